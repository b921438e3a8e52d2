package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
)

// benchPumaClients is the full load of the puma benchmark: the 64
// connections of wrk -c64, unpaced.
const benchPumaClients = 64

// newPumaServer prepares puma with 2 workers × 4 threads: "puma-cluster"
// is puma's own cluster mode, "puma-recipe" the README's recipe under baton
// run (scripts/puma/puma.rb, --ready notify, --defer-accept 30s,
// --boot-nice 10), and "puma-recipe-no-defer" and "puma-recipe-no-nice" the
// same without one of the two options, the controls that show what each
// does.
func newPumaServer(tb testing.TB, kind string) *benchServer {
	tb.Helper()
	benchNeed(tb, "puma")
	puma, _ := exec.LookPath("puma")
	dir := tb.TempDir()
	s := &benchServer{kind: kind, dir: dir, addr: benchFreeAddr(tb), workers: 2, tb: tb}
	s.env = append(os.Environ(), ownerOf(tb).marker, "BENCH_FLAVOR="+kind)
	recipe, err := os.ReadFile(filepath.Join("..", "scripts", "puma", "puma.rb"))
	if err != nil {
		tb.Fatal(err)
	}
	for name, content := range map[string]string{"config.ru": benchRackApp, "puma.rb": string(recipe)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	switch kind {
	case "puma-cluster":
		s.pidfile = filepath.Join(dir, "puma.pid")
		s.argv = []string{puma, "-w", "2", "-t", "4:4", "-b", "tcp://" + s.addr, "--pidfile", s.pidfile,
			"-e", "production", "config.ru"}
	case "puma-recipe", "puma-recipe-no-defer", "puma-recipe-no-nice":
		s.pidfile = filepath.Join(dir, "baton.pid")
		s.argv = []string{batonBin, "run", "--pidfile", s.pidfile, "--listen", s.addr, "--workers", "2",
			"--ready", "notify", "--dir", dir}
		if kind != "puma-recipe-no-defer" {
			s.argv = append(s.argv, "--defer-accept", "30s")
		}
		if kind != "puma-recipe-no-nice" {
			s.argv = append(s.argv, "--boot-nice", "10")
		}
		s.argv = append(s.argv, "--", puma, "-C", filepath.Join(dir, "puma.rb"), "config.ru")
	default:
		tb.Fatalf("unknown puma kind %q", kind)
	}
	return s
}

// BenchmarkPumaFullLoad is issue 14's measure of puma under baton at full
// load (64 unpaced clients), new connection per request and keep-alive:
//   - failed/cycle of `baton upgrade start --commit` cycles (b.N of them),
//     for the recipe and for two controls, one without --boot-nice and one
//     without --defer-accept;
//   - throughput of the recipe against puma's own cluster mode with the
//     same 2 workers × 4 threads, rounds of 3 s alternating (ratio target
//     at least 0.98);
//   - p99 in the upgrade window over the steady p99 before it (target at
//     most 1.5);
//   - baton's own CPU time in the windows (issue 17): both masters' and the
//     orchestrator's, and their share of the host's busy CPU time.
func BenchmarkPumaFullLoad(b *testing.B) {
	for _, mode := range []load.Mode{load.NewConn, load.KeepAlive} {
		for _, kind := range []string{"puma-recipe", "puma-recipe-no-nice", "puma-recipe-no-defer"} {
			b.Run(mode.String()+"/"+kind, func(b *testing.B) {
				benchPumaFullLoad(b, mode, kind)
			})
		}
	}
}

func benchPumaFullLoad(b *testing.B, mode load.Mode, kind string) {
	ctx, cancel := context.WithTimeout(testContext(b), 15*time.Minute)
	defer cancel()
	s := newPumaServer(b, kind)
	s.mustStart(ctx)
	opts := load.Options{Target: s.url(), Concurrency: benchPumaClients, Mode: mode, Timeout: 20 * time.Second}
	run := func(o load.Options) load.Result {
		r, err := load.Start(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		return r.Wait()
	}
	if kind == "puma-recipe" {
		cluster := newPumaServer(b, "puma-cluster")
		cluster.mustStart(ctx)
		var rates [2][]float64
		for range 3 {
			for i, srv := range []*benchServer{cluster, s} {
				o := opts
				o.Target, o.Duration = srv.url(), 3*time.Second
				r := run(o)
				rates[i] = append(rates[i], float64(r.Requests)/r.Elapsed.Seconds())
			}
		}
		// Reported after the cycles: ResetTimer deletes reported metrics.
		defer func() {
			b.ReportMetric(benchMedianF(rates[0]), "cluster-req/s")
			b.ReportMetric(benchMedianF(rates[1]), "baton-req/s")
			b.ReportMetric(benchMedianF(rates[1])/benchMedianF(rates[0]), "ratio")
		}()
	}

	var failed, races int
	var steadyP99, windowP99 []time.Duration
	var masterTicks, busyTicks uint64
	s.orchCPU = 0
	b.ResetTimer()
	for range b.N {
		o := opts
		o.Duration = 2 * time.Second
		steady := run(o)
		cpu, err := startWindowCPU(s.pidfile)
		if err != nil {
			b.Fatal(err)
		}
		r, err := load.Start(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		_, err = benchCycleBaton(ctx, s)
		window := r.Stop()
		mt, bt, cerr := cpu.end()
		if err != nil {
			b.Fatalf("%s: %v\n%s", kind, err, s.log())
		}
		if cerr != nil {
			b.Fatal(cerr)
		}
		masterTicks += mt
		busyTicks += bt
		failed += steady.Failed + window.Failed
		races += steady.Races + window.Races
		steadyP99 = append(steadyP99, steady.P99)
		windowP99 = append(windowP99, window.P99)
		if testing.Verbose() && window.Failed > 0 {
			b.Logf("%s: %v %q", kind, window.Failures, window.Samples)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(failed)/n, "failed/cycle")
	b.ReportMetric(float64(races)/n, "races/cycle")
	b.ReportMetric(ms(benchMedian(steadyP99)), "steady-p99-ms")
	b.ReportMetric(ms(benchMedian(windowP99)), "upgrade-p99-ms")
	b.ReportMetric(float64(benchMedian(windowP99))/float64(benchMedian(steadyP99)), "p99-ratio")
	// baton's own CPU in the windows (both masters and the orchestrator)
	// against the host's busy time in them; clock ticks are 10 ms (USER_HZ).
	mastersCPU := time.Duration(masterTicks) * 10 * time.Millisecond
	batonCPU := mastersCPU + s.orchCPU
	busy := time.Duration(busyTicks) * 10 * time.Millisecond
	b.ReportMetric(ms(mastersCPU)/n, "masters-cpu-ms/cycle")
	b.ReportMetric(ms(s.orchCPU)/n, "orch-cpu-ms/cycle")
	b.ReportMetric(ms(busy)/n, "busy-cpu-ms/cycle")
	b.ReportMetric(100*float64(batonCPU)/float64(busy), "baton-cpu-%")
}

// benchMedianF is the median of xs.
func benchMedianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchWindowCPU follows the baton masters' CPU time through an upgrade
// window, against the busy time of the whole host: the master the pid file
// names at the start (from its ticks then) and the next one it names (from
// its start), each read every 20 ms from /proc/PID/stat. The old master's
// last moments before it exits are missed; it is idle then, waiting for its
// workers' exits.
type benchWindowCPU struct {
	pidfile string
	base    map[int]uint64 // ticks at the start; the new master's are 0
	last    map[int]uint64 // ticks at the last read
	busy0   uint64
	stop    chan struct{}
	done    chan struct{}
}

func startWindowCPU(pidfile string) (*benchWindowCPU, error) {
	old, err := readPid(pidfile)
	if err != nil {
		return nil, err
	}
	t, err := benchCPUTicks(old)
	if err != nil {
		return nil, err
	}
	busy, err := benchHostBusyTicks()
	if err != nil {
		return nil, err
	}
	w := &benchWindowCPU{pidfile: pidfile, base: map[int]uint64{old: t}, last: map[int]uint64{old: t},
		busy0: busy, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			w.read()
			select {
			case <-w.stop:
				w.read()
				return
			case <-tick.C:
			}
		}
	}()
	return w, nil
}

func (w *benchWindowCPU) read() {
	if pid, err := readPid(w.pidfile); err == nil {
		if _, ok := w.base[pid]; !ok {
			w.base[pid] = 0
		}
	}
	for pid := range w.base {
		if t, err := benchCPUTicks(pid); err == nil {
			w.last[pid] = t
		}
	}
}

// end stops following and returns the masters' CPU ticks in the window and
// the host's busy ticks.
func (w *benchWindowCPU) end() (masters, busy uint64, err error) {
	close(w.stop)
	<-w.done
	for pid, t := range w.last {
		masters += t - w.base[pid]
	}
	busy1, err := benchHostBusyTicks()
	return masters, busy1 - w.busy0, err
}

// benchHostBusyTicks is the host's CPU time in clock ticks, all CPUs, but
// idle and iowait (the first line of /proc/stat).
func benchHostBusyTicks() (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	var busy uint64
	for i, v := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, nil
}
