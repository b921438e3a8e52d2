package integration

// BenchmarkUpgradeScale: how an upgrade's time grows with the host. Like
// every benchmark it runs only with -bench. With -bench.json FILE each
// configuration's figures are appended to FILE as one JSON object per line,
// from which `go run ./integration/cmd/plot` draws the curves and prints the
// tables of BENCHMARKS.md.
//
//	go test -run '^$' -bench UpgradeScale -benchtime 5x -timeout 30m ./integration/ -bench.json /tmp/scale.jsonl

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var benchJSON = flag.String("bench.json", "", "BenchmarkUpgradeScale appends its figures to this file, one JSON object per line")

// scaleBase is the host every dimension of the scaling benchmark starts
// from: one of the three is varied at a time.
var scaleBase = scalePoint{Sleepers: 100, Workers: 2, Listeners: 1}

// scaleDims are the values each dimension takes.
var scaleDims = []struct {
	name   string
	values []int
	set    func(*scalePoint, int)
}{
	{"procs", []int{100, 2000, 10000}, func(p *scalePoint, n int) { p.Sleepers = n }},
	{"workers", []int{2, 16, 64}, func(p *scalePoint, n int) { p.Workers = n }},
	{"listeners", []int{1, 16, 128}, func(p *scalePoint, n int) { p.Listeners = n }},
}

// scalePoint is one configuration of the host and the server.
type scalePoint struct {
	Sleepers  int `json:"sleepers"`  // other processes started, sleeping
	Workers   int `json:"workers"`   // workers per generation
	Listeners int `json:"listeners"` // listening sockets: half tcp, half unix (1: tcp)
}

// scaleResult is one line of -bench.json.
type scaleResult struct {
	Server    string     `json:"server"`
	Dimension string     `json:"dimension"`
	Value     int        `json:"value"`
	Point     scalePoint `json:"point"`
	HostProcs int        `json:"host_procs"` // processes in /proc during the runs
	Cycles    int        `json:"cycles"`
	PolledMS  float64    `json:"polled_ms"`
	BatonMS   float64    `json:"baton_ms"`
	BatonMin  float64    `json:"baton_min_ms"`
	Load1     float64    `json:"load1"` // load average when the point ended
	Commit    string     `json:"commit,omitempty"`
}

// BenchmarkUpgradeScale times an upgrade of nginx and of a baton master
// (median baton-ms of the cycles, and the polled floor as in
// BenchmarkUpgradeTime) as the host grows: 100, 2,000 and 10,000 other
// sleeping processes; 2, 16 and 64 workers; 1, 16 and 128 listeners, half
// of them tcp and half unix. One dimension varies at a time, the others
// stay at the base (100 processes, 2 workers, 1 listener).
func BenchmarkUpgradeScale(b *testing.B) {
	for _, kind := range []string{"nginx", "baton"} {
		for _, dim := range scaleDims {
			for _, v := range dim.values {
				p := scaleBase
				dim.set(&p, v)
				b.Run(fmt.Sprintf("%s/%s-%d", kind, dim.name, v), func(b *testing.B) {
					benchScale(b, kind, dim.name, v, p)
				})
			}
		}
	}
}

func benchScale(b *testing.B, kind, dim string, value int, p scalePoint) {
	ctx, cancel := context.WithTimeout(testContext(b), 10*time.Minute)
	defer cancel()
	farm := startSleepers(ctx, b, p.Sleepers)
	defer farm.stop()
	s := newScaleServer(b, kind, p)
	s.mustStart(ctx)
	var polled, baton []time.Duration
	resetPhases(b)
	defer logPhases(b)
	b.ResetTimer()
	for range b.N {
		d, err := benchCyclePolled(ctx, s)
		if err != nil {
			b.Fatalf("polled: %v\n%s", err, s.log())
		}
		polled = append(polled, d)
		if d, err = benchCycleBaton(ctx, s); err != nil {
			b.Fatalf("baton: %v\n%s", err, s.log())
		}
		baton = append(baton, d)
	}
	b.StopTimer()
	res := scaleResult{Server: kind, Dimension: dim, Value: value, Point: p, HostProcs: countProcs(), Cycles: b.N,
		PolledMS: ms(benchMedian(polled)), BatonMS: ms(benchMedian(baton)), BatonMin: ms(slices.Min(baton)), Load1: loadAverage()}
	b.ReportMetric(res.PolledMS, "polled-ms")
	b.ReportMetric(res.BatonMS, "baton-ms")
	b.ReportMetric(res.BatonMin, "baton-min-ms")
	b.ReportMetric(res.BatonMS-res.PolledMS, "overhead-ms")
	b.ReportMetric(float64(res.HostProcs), "host-procs")
	if err := appendScaleResult(res); err != nil {
		b.Error(err)
	}
}

// appendScaleResult appends res to -bench.json, if given.
func appendScaleResult(res scaleResult) error {
	if *benchJSON == "" {
		return nil
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		res.Commit = strings.TrimSpace(string(out))
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*benchJSON, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// newScaleServer prepares a server of kind (nginx or baton) with p's
// workers and listeners: the first listener is the tcp one the checks use;
// of the others, every second is a unix socket.
func newScaleServer(b *testing.B, kind string, p scalePoint) *benchServer {
	s := newBenchServer(b, kind)
	s.workers = p.Workers
	tcp := scaleFreeAddrs(b, p.Listeners/2, s.addr)
	listens := []string{s.addr}
	for i := 1; i < p.Listeners; i++ {
		if i%2 == 1 {
			listens = append(listens, "unix:"+filepath.Join(s.dir, fmt.Sprintf("s%d.sock", i)))
		} else {
			listens, tcp = append(listens, tcp[0]), tcp[1:]
		}
	}
	switch kind {
	case "nginx":
		conf := filepath.Join(s.dir, "nginx.conf")
		data, err := os.ReadFile(conf)
		if err != nil {
			b.Fatal(err)
		}
		var lines []string
		for _, l := range listens {
			lines = append(lines, "listen "+l+";")
		}
		text := strings.Replace(string(data), "worker_processes 2;", fmt.Sprintf("worker_processes %d;", p.Workers), 1)
		text = strings.Replace(text, "listen "+s.addr+";", strings.Join(lines, "\n        "), 1)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	case "baton":
		argv := []string{batonBin, "run", "--pidfile", s.pidfile}
		for _, l := range listens {
			argv = append(argv, "--listen", l)
		}
		s.argv = append(argv, "--workers", strconv.Itoa(p.Workers), "--ready", "notify", "--", batonBin, "demo-app")
	default:
		b.Fatalf("no scaling benchmark for %s", kind)
	}
	return s
}

// scaleFreeAddrs returns n loopback addresses other than taken whose ports
// were free a moment ago: all bound at once, then closed, so that no two
// are the same port (benchFreeAddr, called n times, may hand one out twice).
func scaleFreeAddrs(tb testing.TB, n int, taken string) []string {
	tb.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for len(out) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lns = append(lns, ln)
		if a := ln.Addr().String(); a != taken {
			out = append(out, a)
		}
	}
	return out
}

// sleeperFarm is a set of sleeping processes, the "other processes" of a
// busy host: one perl process that forks them (cheap: copies on write of
// one small interpreter) and prints their pids.
type sleeperFarm struct {
	tb     testing.TB
	cmd    *exec.Cmd
	waited <-chan error
	pids   []int
}

// farmScript forks N sleepers, each of which dies with the farm
// (PR_SET_PDEATHSIG, SIGKILL: the farm itself dies with the test binary
// the same way) and lets go of the farm's output (whose end tells the
// benchmark they are all started), prints their pids and sleeps. Its children are reaped by
// the kernel (SIGCHLD ignored). Its name, farmComm, tells the harness's
// watchdog it need not follow them.
const farmScript = `
my ($n, $prctl, $name) = @ARGV;
$0 = $name;
$SIG{CHLD} = 'IGNORE';
my $farm = $$;
$| = 1;
for (1 .. $n) {
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		syscall($prctl, 1, 9);
		exit 0 if getppid() != $farm;
		open(STDOUT, '>', '/dev/null');
		open(STDERR, '>', '/dev/null');
		sleep 3600 while 1;
	}
	print "$pid\n";
}
close STDOUT;
sleep 3600 while 1;
`

// farmComm is the farm's name (and its sleepers'): at most 15 bytes, the
// length of a task's comm.
const farmComm = "baton-sleepers"

// startSleepers starts n sleepers, or none when n is 0.
func startSleepers(ctx context.Context, tb testing.TB, n int) *sleeperFarm {
	tb.Helper()
	f := &sleeperFarm{tb: tb}
	if n == 0 {
		return f
	}
	benchNeed(tb, "perl")
	f.cmd = exec.Command("perl", "-e", farmScript, strconv.Itoa(n), strconv.Itoa(unix.SYS_PRCTL), farmComm)
	f.cmd.Stderr = os.Stderr
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if f.waited, err = startManaged(f.cmd); err != nil {
		tb.Fatal(err)
	}
	ownerOf(tb).adopt(f.cmd.Process.Pid)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			f.stop()
			tb.Fatalf("sleeper farm printed %q", sc.Text())
		}
		f.pids = append(f.pids, pid)
	}
	if len(f.pids) != n || ctx.Err() != nil {
		f.stop()
		tb.Fatalf("sleeper farm started %d of %d sleepers", len(f.pids), n)
	}
	return f
}

// stop kills every sleeper by its pid, then the farm, and waits for it.
func (f *sleeperFarm) stop() {
	if f.cmd == nil {
		return
	}
	for _, pid := range f.pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	f.cmd.Process.Kill()
	<-f.waited
	f.cmd = nil
}

// countProcs counts the processes in /proc.
func countProcs() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// loadAverage is the 1-minute load average.
func loadAverage() float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
