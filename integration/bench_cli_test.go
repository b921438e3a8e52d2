package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCLIStart times `baton version` from exec until exit against a
// static hello-world Go binary built for the comparison (target: at most
// 2×): the CLI's start is part of every upgrade. Each of b.N rounds runs
// both 20 times, alternating; the metrics are the medians.
func BenchmarkCLIStart(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello\\n\") }\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	hello := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-o", hello, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build hello: %v\n%s", err, out)
	}
	run := func(argv ...string) time.Duration {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), ownerOf(b).marker)
		begin := time.Now()
		waited, err := startManaged(cmd)
		if err != nil {
			b.Fatal(err)
		}
		if err := <-waited; err != nil {
			b.Fatalf("%v: %v", argv, err)
		}
		return time.Since(begin)
	}
	var h, v []time.Duration
	b.ResetTimer()
	for range b.N {
		for range 20 {
			h = append(h, run(hello))
			v = append(v, run(batonBin, "version"))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(benchMedian(h)), "hello-ms")
	b.ReportMetric(ms(benchMedian(v)), "version-ms")
	b.ReportMetric(float64(benchMedian(v))/float64(benchMedian(h)), "ratio")
}
