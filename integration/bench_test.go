package integration

// Benchmarks of baton's upgrades against the ways the anchors do it. They run
// only with -bench (never in `go test ./...`), skip when a peer is missing,
// use loopback only, are bounded in time, and kill everything they start by
// pid (ownerOf). How to run them and the latest figures: BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchtime 3x -timeout 30m ./integration/

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

	"github.com/batonhq/baton/upgrade/load"
)

// benchConcurrency is the number of load clients in "maximum load": enough
// to keep both cores of the reference machine busy with unpaced requests.
const benchConcurrency = 8

// benchServer is one running server a benchmark drives: a master named by a
// pid file, serving HTTP on a loopback port.
type benchServer struct {
	kind    string // "nginx", "unicorn", "baton", "puma", "puma-baton", "server-starter"
	dir     string
	pidfile string
	addr    string // 127.0.0.1:PORT
	workers int    // workers per generation
	argv    []string
	env     []string
	tb      testing.TB
	// orchCPU adds up the CPU time of the `baton upgrade` processes that
	// benchCycleBaton ran (their rusage).
	orchCPU time.Duration
}

// url is the server's root URL.
func (s *benchServer) url() string { return "http://" + s.addr + "/" }

// benchNeed skips the benchmark when a program is missing (or fails it when
// BATON_REQUIRE_PEERS=1).
func benchNeed(tb testing.TB, programs ...string) {
	tb.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv(EnvRequirePeers) == "1" {
				tb.Fatalf("%s is required (%s=1) but missing: %v", p, EnvRequirePeers, err)
			}
			tb.Skipf("%s not installed: %v", p, err)
		}
	}
}

// benchFreeAddr returns a loopback address whose port was free a moment ago
// (bound to port 0, then closed: the peers bind their own sockets).
func benchFreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const benchRackApp = `BOOT = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond).to_s
run lambda { |env| [200, {"content-type" => "text/plain"}, ["#{ENV.fetch("BENCH_FLAVOR", "rack")} boot=#{BOOT} pid=#{Process.pid}\n"]] }
`

// newBenchServer prepares (but does not start) a server of kind in a fresh
// directory.
func newBenchServer(tb testing.TB, kind string) *benchServer {
	tb.Helper()
	dir := tb.TempDir()
	s := &benchServer{kind: kind, dir: dir, addr: benchFreeAddr(tb), workers: 2, tb: tb}
	s.env = append(os.Environ(), ownerOf(tb).marker, "BENCH_FLAVOR="+kind)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	switch kind {
	case "nginx":
		benchNeed(tb, "nginx")
		nginx, _ := exec.LookPath("nginx")
		s.pidfile = filepath.Join(dir, "nginx.pid")
		if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
			tb.Fatal(err)
		}
		write("nginx.conf", fmt.Sprintf(`daemon on;
master_process on;
worker_processes %[3]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen %[2]s;
        location / { default_type text/plain; return 200 "nginx pid=$pid\n"; }
    }
}
`, dir, s.addr, s.workers))
		s.argv = []string{nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")}
	case "unicorn":
		benchNeed(tb, "unicorn")
		unicorn, _ := exec.LookPath("unicorn")
		s.pidfile = filepath.Join(dir, "unicorn.pid")
		write("config.ru", benchRackApp)
		write("unicorn.conf.rb", fmt.Sprintf(`worker_processes %d
listen %q
pid %q
timeout 30
`, s.workers, s.addr, s.pidfile))
		s.argv = []string{unicorn, "-c", filepath.Join(dir, "unicorn.conf.rb"), filepath.Join(dir, "config.ru")}
	case "baton":
		s.pidfile = filepath.Join(dir, "baton.pid")
		s.argv = []string{batonBin, "run", "--pidfile", s.pidfile, "--listen", s.addr,
			"--workers", strconv.Itoa(s.workers), "--ready", "notify", "--", batonBin, "demo-app"}
	case "puma":
		// puma's own hot restart (USR2 in single mode re-execs puma on the
		// same socket).
		benchNeed(tb, "puma")
		puma, _ := exec.LookPath("puma")
		s.workers = 1
		s.pidfile = filepath.Join(dir, "puma.pid")
		write("config.ru", benchRackApp)
		s.argv = []string{puma, "-b", "tcp://" + s.addr, "-t", "4:4", "--pidfile", s.pidfile, "-e", "production", filepath.Join(dir, "config.ru")}
	case "puma-baton":
		// The same puma, under baton run: socket activation through
		// LISTEN_FDS. Debian's puma lacks the sd_notify gem, so readiness is
		// a delay longer than its boot.
		benchNeed(tb, "puma")
		puma, _ := exec.LookPath("puma")
		s.workers = 1
		s.pidfile = filepath.Join(dir, "baton.pid")
		write("config.ru", benchRackApp)
		s.argv = []string{batonBin, "run", "--pidfile", s.pidfile, "--listen", s.addr, "--workers", "1",
			"--ready", "delay:" + benchPumaBoot.String(), "--",
			puma, "-b", "tcp://" + s.addr, "-t", "4:4", "-e", "production", filepath.Join(dir, "config.ru")}
	case "server-starter":
		benchNeed(tb, "start_server")
		ss, _ := exec.LookPath("start_server")
		s.workers = 1
		s.pidfile = filepath.Join(dir, "start_server.pid")
		s.argv = []string{ss, "--port", s.addr, "--pid-file", s.pidfile, "--interval", "1", "--", batonBin, "demo-app"}
	default:
		tb.Fatalf("unknown server kind %q", kind)
	}
	return s
}

// benchPumaBoot is the readiness delay for puma under baton: Debian's puma
// 5.6 boots in well under a second on the reference machine.
const benchPumaBoot = 1500 * time.Millisecond

// start starts the master and waits until it answers. The master gets its
// own process group, which the owner kills at cleanup with everything in it.
func (s *benchServer) start(ctx context.Context) error {
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	logf, err := os.OpenFile(filepath.Join(s.dir, "master.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	waited, err := startManaged(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.kind, err)
	}
	ownerOf(s.tb).adopt(cmd.Process.Pid)
	go func() { <-waited }()
	err = waitFor(ctx, 30*time.Second, func() (bool, error) {
		if _, err := readPid(s.pidfile); err != nil {
			return false, err
		}
		_, err := benchGet(ctx, s.url())
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("%s not serving: %w\n%s", s.kind, err, s.log())
	}
	s.adoptMasters()
	if s.kind == "nginx" {
		// The benchmarks upgrade a settled server: a worker forked a moment
		// ago still bears the master's title until it sets its own, and is
		// then taken for a new master (baton refuses: "upgrade pending").
		err = waitFor(ctx, 10*time.Second, func() (bool, error) {
			pid, err := readPid(s.pidfile)
			if err != nil {
				return false, err
			}
			n := 0
			for _, c := range children(pid) {
				if strings.HasPrefix(c.cmdline, "nginx: worker process") {
					n++
				}
			}
			return n == s.workers, nil
		})
		if err != nil {
			return fmt.Errorf("nginx workers not titled: %w", err)
		}
	}
	return nil
}

// adoptMasters makes the masters named by the pid files the owner's.
func (s *benchServer) adoptMasters() {
	for _, f := range []string{s.pidfile, s.pidfile + ".oldbin"} {
		if pid, err := readPid(f); err == nil {
			ownerOf(s.tb).adopt(pid)
		}
	}
}

// log returns the end of the master's log.
func (s *benchServer) log() string {
	var out []string
	for _, f := range []string{"master.log", "error.log"} {
		data, err := os.ReadFile(filepath.Join(s.dir, f))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		out = append(out, lines[max(0, len(lines)-15):]...)
	}
	return strings.Join(out, "\n")
}

// mustStart starts the server or fails the benchmark.
func (s *benchServer) mustStart(ctx context.Context) {
	s.tb.Helper()
	if err := s.start(ctx); err != nil {
		s.tb.Fatal(err)
	}
}

// benchGet makes one request on a new connection and returns the body.
func benchGet(ctx context.Context, url string) (string, error) {
	client := http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 2 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(body), nil
}

// benchPoll polls cond every millisecond, like a tight shell loop, until it
// holds or limit passes. Only the "manual, tightly polled" procedure uses
// it: the point is to time the peer, not the poll.
func benchPoll(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// benchWaitGone waits until pid has exited, with a pidfd (precise, no
// polling), bounded by limit.
func benchWaitGone(ctx context.Context, pid int, limit time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(limit)
	for {
		if !alive(pid) {
			return nil // a zombie counts as gone
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return fmt.Errorf("pid %d still alive after %s", pid, limit)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(min(left, 100*time.Millisecond)/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll pidfd %d: %w", pid, err)
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			return nil
		}
	}
}

// benchBatonCPU runs the baton binary with env added to its environment
// and returns its exit code, its output and the CPU time (user and system)
// it used.
func benchBatonCPU(ctx context.Context, tb testing.TB, env []string, args ...string) (int, string, time.Duration) {
	cmd := exec.CommandContext(ctx, batonBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(append(os.Environ(), ownerOf(tb).marker), env...)
	cmd.WaitDelay = 10 * time.Second
	waited, err := startManaged(cmd)
	if err != nil {
		return -1, err.Error(), 0
	}
	err = <-waited
	var cpu time.Duration
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), cpu
	}
	if err != nil {
		return -1, out.String() + err.Error(), cpu
	}
	return 0, out.String(), cpu
}

// benchKill sends sig to pid, treating a gone process as done.
func benchKill(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -%v %d: %w", sig, pid, err)
	}
	return nil
}

// benchSleep sleeps for d unless ctx ends first: the anchors' scripts sleep,
// and that is what is being measured.
func benchSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// A benchMethod performs one upgrade cycle of s: from its first signal until
// the old master is gone and only the new generation serves. It returns the
// time that took.
type benchMethod struct {
	name  string
	cycle func(ctx context.Context, s *benchServer) (time.Duration, error)
}

var benchMethods = []benchMethod{
	{name: "baton", cycle: benchCycleBaton},
	{name: "manual", cycle: benchCycleManual},
	{name: "debian", cycle: benchCycleDebian},
	{name: "restart", cycle: benchCycleRestart},
}

// benchCycleBaton is baton's checked upgrade, committed at once.
func benchCycleBaton(ctx context.Context, s *benchServer) (time.Duration, error) {
	old, err := readPid(s.pidfile)
	if err != nil {
		return 0, err
	}
	var env []string
	prof := benchProfileDir(s.tb)
	if prof != "" {
		env = append(env, "BATON_PROFILE="+prof)
	}
	begin := time.Now()
	code, out, cpu := benchBatonCPU(ctx, s.tb, env, "upgrade", "start", "--pidfile", s.pidfile, "--commit", "--verify-for", "0", "--check", s.url())
	s.orchCPU += cpu
	if code != 0 {
		return 0, fmt.Errorf("baton upgrade start --commit: exit %d:\n%s", code, out)
	}
	if err := benchWaitGone(ctx, old, 30*time.Second); err != nil {
		return 0, err
	}
	elapsed := time.Since(begin)
	if prof != "" {
		recordProfile(s.tb, prof, begin, begin.Add(elapsed))
	}
	if testing.Verbose() {
		s.tb.Logf("baton upgrade start --commit of %s in %s:\n%s", s.kind, elapsed, out)
	}
	s.adoptMasters()
	return elapsed, nil
}

// benchCycleManual is the procedure of nginx's control documentation as
// scripts run it: USR2, sleep 1 (nginx's own `make upgrade` target sleeps 1
// second), WINCH, QUIT the old master.
func benchCycleManual(ctx context.Context, s *benchServer) (time.Duration, error) {
	old, err := readPid(s.pidfile)
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := benchKill(old, syscall.SIGUSR2); err != nil {
		return 0, err
	}
	if err := benchSleep(ctx, time.Second); err != nil {
		return 0, err
	}
	s.adoptMasters()
	if err := benchKill(old, syscall.SIGWINCH); err != nil {
		return 0, err
	}
	if err := benchKill(old, syscall.SIGQUIT); err != nil {
		return 0, err
	}
	if err := benchWaitGone(ctx, old, 30*time.Second); err != nil {
		return 0, err
	}
	return time.Since(begin), s.wantNewMaster(old)
}

// benchCycleDebian is Debian's /etc/init.d/nginx upgrade_nginx: USR2, then
// `while [ ! -s pid.oldbin ] || [ ! -s pid ]; do sleep 1; done` (at most 10
// times), then QUIT to the pid in .oldbin.
func benchCycleDebian(ctx context.Context, s *benchServer) (time.Duration, error) {
	old, err := readPid(s.pidfile)
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := benchKill(old, syscall.SIGUSR2); err != nil {
		return 0, err
	}
	nonEmpty := func(p string) bool { fi, err := os.Stat(p); return err == nil && fi.Size() > 0 }
	for cnt := 0; !nonEmpty(s.pidfile+".oldbin") || !nonEmpty(s.pidfile); {
		if cnt++; cnt > 10 {
			return 0, errors.New("debian upgrade: pid files not created on time")
		}
		if err := benchSleep(ctx, time.Second); err != nil {
			return 0, err
		}
	}
	s.adoptMasters()
	oldbin, err := readPid(s.pidfile + ".oldbin")
	if err != nil {
		return 0, err
	}
	if err := benchKill(oldbin, syscall.SIGQUIT); err != nil {
		return 0, err
	}
	if err := benchWaitGone(ctx, old, 30*time.Second); err != nil {
		return 0, err
	}
	return time.Since(begin), s.wantNewMaster(old)
}

// benchCycleRestart is a plain restart: QUIT (graceful stop), wait until the
// master is gone, start it again, until it answers.
func benchCycleRestart(ctx context.Context, s *benchServer) (time.Duration, error) {
	old, err := readPid(s.pidfile)
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := benchKill(old, syscall.SIGQUIT); err != nil {
		return 0, err
	}
	if err := benchWaitGone(ctx, old, 30*time.Second); err != nil {
		return 0, err
	}
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	return time.Since(begin), nil
}

// benchCyclePolled is the manual procedure with no sleeps and no checks, as
// fast as a tight loop can drive it: USR2; poll until the pid file names a
// new master whose workers are forked; QUIT the old master; poll until it is
// gone. It is the floor any upgrade tool's time is measured against.
func benchCyclePolled(ctx context.Context, s *benchServer) (time.Duration, error) {
	old, err := readPid(s.pidfile)
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := benchKill(old, syscall.SIGUSR2); err != nil {
		return 0, err
	}
	err = benchPoll(ctx, 30*time.Second, "new master with workers", func() bool {
		pid, err := readPid(s.pidfile)
		return err == nil && pid != old && benchChildren(pid) >= s.workers
	})
	if err != nil {
		return 0, err
	}
	if err := benchKill(old, syscall.SIGQUIT); err != nil {
		return 0, err
	}
	if err := benchWaitGone(ctx, old, 30*time.Second); err != nil {
		return 0, err
	}
	elapsed := time.Since(begin)
	s.adoptMasters()
	return elapsed, nil
}

// benchChildren counts pid's children from /proc/PID/task/*/children: cheap
// enough for a 1 ms poll loop, where a scan of all of /proc would take the
// CPU the peer needs to boot.
func benchChildren(pid int) int { return len(benchChildPIDs(pid)) }

// wantNewMaster checks that the pid file names a live master other than old.
func (s *benchServer) wantNewMaster(old int) error {
	s.adoptMasters()
	pid, err := readPid(s.pidfile)
	if err != nil {
		return err
	}
	if pid == old || !alive(pid) {
		return fmt.Errorf("pid file names %d after the upgrade (old %d, alive %v)", pid, old, alive(pid))
	}
	return nil
}

// BenchmarkUpgradeUnderLoad counts the requests lost per upgrade cycle under
// maximum load, keep-alive and new connection per request, for baton's
// upgrade and for the anchors' procedures, on nginx, unicorn and baton
// masters. Metrics per cycle: failed (real failures), races (keep-alive
// requests that hit a closing idle connection and were retried, as browsers
// and net/http do; a non-retrying client like wrk counts them as errors),
// refused (nobody accepting), and the cycle's time in seconds.
func BenchmarkUpgradeUnderLoad(b *testing.B) {
	for _, kind := range []string{"nginx", "unicorn", "baton"} {
		b.Run(kind, func(b *testing.B) {
			for _, m := range benchMethods {
				b.Run(m.name, func(b *testing.B) {
					for _, mode := range []load.Mode{load.KeepAlive, load.NewConn} {
						b.Run(mode.String(), func(b *testing.B) {
							benchUnderLoad(b, kind, m, mode)
						})
					}
				})
			}
		})
	}
}

func benchUnderLoad(b *testing.B, kind string, m benchMethod, mode load.Mode) {
	ctx, cancel := context.WithTimeout(testContext(b), 5*time.Minute)
	defer cancel()
	s := newBenchServer(b, kind)
	s.mustStart(ctx)
	run, err := load.Start(ctx, load.Options{Target: s.url(), Concurrency: benchConcurrency, Mode: mode, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer run.Stop()
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		d, err := m.cycle(ctx, s)
		if err != nil {
			b.StopTimer()
			run.Stop()
			b.Fatalf("%s upgrade of %s: %v\n%s", m.name, kind, err, s.log())
		}
		total += d
	}
	b.StopTimer()
	res := run.Stop()
	n := float64(b.N)
	b.ReportMetric(float64(res.Failed)/n, "failed/cycle")
	b.ReportMetric(float64(res.Races)/n, "races/cycle")
	b.ReportMetric(float64(res.Failures[load.FailRefused])/n, "refused/cycle")
	b.ReportMetric(total.Seconds()/n, "s/cycle")
	b.ReportMetric(float64(res.Requests)/res.Elapsed.Seconds(), "req/s")
	if res.Failed > 0 {
		b.Logf("%s: %s; e.g. %q", kind, res, res.Samples[:min(3, len(res.Samples))])
	}
}

// BenchmarkUpgradeTime times one upgrade cycle without load, from the first
// signal until the old master is gone: the peer upgraded as fast as a tight
// loop can drive it with no checks (polled-ms), by baton's checked
// `upgrade start --commit --verify-for 0` (baton-ms), and baton's own
// overhead, the difference of the medians (baton-min-ms is the fastest
// cycle). For baton masters the floor is the app's boot time instead
// (app-boot-ms: a standalone demo-app from exec until it answers), since the
// master itself is baton's.
// Server::Starter is timed doing its own upgrade (HUP), which always waits its
// --interval.
func BenchmarkUpgradeTime(b *testing.B) {
	for _, kind := range []string{"nginx", "unicorn", "baton", "server-starter"} {
		b.Run(kind, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(testContext(b), 5*time.Minute)
			defer cancel()
			s := newBenchServer(b, kind)
			s.mustStart(ctx)
			if kind == "server-starter" {
				benchServerStarter(ctx, b, s)
				return
			}
			var polled, boot, baton []time.Duration
			resetPhases(b)
			defer logPhases(b)
			b.ResetTimer()
			for range b.N {
				d, err := benchCyclePolled(ctx, s)
				if err != nil {
					b.Fatalf("polled: %v\n%s", err, s.log())
				}
				polled = append(polled, d)
				if kind == "baton" {
					if d, err = benchDemoAppBoot(ctx, b); err != nil {
						b.Fatalf("app boot: %v", err)
					}
					boot = append(boot, d)
				}
				if d, err = benchCycleBaton(ctx, s); err != nil {
					b.Fatalf("baton: %v\n%s", err, s.log())
				}
				baton = append(baton, d)
			}
			b.StopTimer()
			// Medians: one slow cycle on a shared machine says little.
			b.ReportMetric(ms(benchMedian(polled)), "polled-ms")
			b.ReportMetric(ms(benchMedian(baton)), "baton-ms")
			b.ReportMetric(ms(slices.Min(baton)), "baton-min-ms")
			floor := polled
			if kind == "baton" {
				// The floor of a baton master's upgrade is the app's boot:
				// everything above it is baton's (master and orchestrator).
				b.ReportMetric(ms(benchMedian(boot)), "app-boot-ms")
				floor = boot
			}
			b.ReportMetric(ms(benchMedian(baton)-benchMedian(floor)), "overhead-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchMedian returns the median of ds (the upper one of an even count).
func benchMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchDemoAppBoot times a standalone demo-app from exec until it answers.
func benchDemoAppBoot(ctx context.Context, b *testing.B) (time.Duration, error) {
	addr := benchFreeAddr(b)
	cmd := exec.Command(batonBin, "demo-app", "--listen", addr)
	cmd.Env = append(os.Environ(), ownerOf(b).marker)
	begin := time.Now()
	waited, err := startManaged(cmd)
	if err != nil {
		return 0, err
	}
	ownerOf(b).adopt(cmd.Process.Pid)
	err = benchPoll(ctx, 10*time.Second, "demo-app answers", func() bool {
		_, err := benchGet(ctx, "http://"+addr+"/")
		return err == nil
	})
	d := time.Since(begin)
	cmd.Process.Signal(syscall.SIGTERM)
	<-waited
	return d, err
}

// benchServerStarter times Server::Starter's own upgrade: HUP to
// start_server, until the old worker is gone.
func benchServerStarter(ctx context.Context, b *testing.B, s *benchServer) {
	master, err := readPid(s.pidfile)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		kids := children(master)
		if len(kids) != 1 {
			b.Fatalf("start_server has %d workers, want 1", len(kids))
		}
		old := kids[0].pid
		begin := time.Now()
		if err := benchKill(master, syscall.SIGHUP); err != nil {
			b.Fatal(err)
		}
		if err := benchWaitGone(ctx, old, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		total += time.Since(begin)
		err := waitFor(ctx, 10*time.Second, func() (bool, error) { return len(children(master)) == 1, nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(total/time.Duration(b.N)), "upgrade-ms")
}

// BenchmarkUpgradeLatency compares request latency during the upgrade window
// (from the first signal until only the new generation serves) with steady
// state, for puma's own USR2 hot restart, for the same puma under `baton
// run` upgraded by `baton upgrade start --commit`, and for nginx upgraded
// by the same command, and for nginx upgraded by the polled floor's
// procedure (benchCyclePolled: nginx's own cost of the window, without
// baton's). Load: new connection per request, unpaced. Metrics in
// milliseconds, and the ratio of the window's p99 to the steady p99
// (targets for baton: at most 1.5 for puma, 1.2 for nginx).
func BenchmarkUpgradeLatency(b *testing.B) {
	for _, kind := range []string{"puma", "puma-baton", "nginx", "nginx-polled", "nginx-nice"} {
		b.Run(kind, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(testContext(b), 5*time.Minute)
			defer cancel()
			s := newBenchServer(b, strings.TrimSuffix(strings.TrimSuffix(kind, "-polled"), "-nice"))
			s.mustStart(ctx)
			opts := load.Options{Target: s.url(), Concurrency: benchConcurrency, Mode: load.NewConn, Timeout: 10 * time.Second}

			var steady, window []load.Result
			b.ResetTimer()
			for range b.N {
				o := opts
				o.Duration = 2 * time.Second
				run, err := load.Start(ctx, o)
				if err != nil {
					b.Fatal(err)
				}
				steady = append(steady, run.Wait())

				run, err = load.Start(ctx, opts)
				if err != nil {
					b.Fatal(err)
				}
				switch kind {
				case "puma":
					err = benchPumaHotRestart(ctx, s)
				case "nginx-polled":
					_, err = benchCyclePolled(ctx, s)
				case "nginx-nice":
					err = benchCycleNice(ctx, s)
				default:
					_, err = benchCycleBaton(ctx, s)
				}
				res := run.Stop()
				if err != nil {
					b.Fatalf("%s: %v\n%s", kind, err, s.log())
				}
				window = append(window, res)
			}
			b.StopTimer()
			pick := func(rs []load.Result, f func(load.Result) time.Duration) float64 {
				var worst time.Duration
				for _, r := range rs {
					worst = max(worst, f(r))
				}
				return ms(worst)
			}
			p50 := func(r load.Result) time.Duration { return r.P50 }
			p99 := func(r load.Result) time.Duration { return r.P99 }
			mx := func(r load.Result) time.Duration { return r.Max }
			b.ReportMetric(pick(steady, p50), "steady-p50-ms")
			b.ReportMetric(pick(steady, p99), "steady-p99-ms")
			b.ReportMetric(pick(steady, mx), "steady-max-ms")
			b.ReportMetric(pick(window, p50), "upgrade-p50-ms")
			b.ReportMetric(pick(window, p99), "upgrade-p99-ms")
			b.ReportMetric(pick(window, mx), "upgrade-max-ms")
			b.ReportMetric(pick(window, p99)/pick(steady, p99), "p99-ratio")
			var failed int
			for _, r := range window {
				failed += r.Failed
			}
			b.ReportMetric(float64(failed)/float64(b.N), "failed/cycle")
		})
	}
}

// benchCycleNice is benchCycleBaton with the new generation booting at
// nice 10: the old master is reniced before the upgrade (its fork, the new
// master, and the new master's workers inherit it), and the new master
// and its workers are set back to 0 as soon as it has them all, before
// baton drains the old ones (an experiment: how much of the window's p99
// is the new master's boot competing with the workers).
func benchCycleNice(ctx context.Context, s *benchServer) error {
	old, err := readPid(s.pidfile)
	if err != nil {
		return err
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, old, 10); err != nil {
		return fmt.Errorf("renice old master %d: %w", old, err)
	}
	restored := make(chan error, 1)
	go func() {
		restored <- benchPoll(ctx, 30*time.Second, "new master with workers", func() bool {
			nu, err := readPid(s.pidfile)
			if err != nil || nu == old {
				return false
			}
			kids := benchChildPIDs(nu)
			if len(kids) < s.workers {
				return false
			}
			for _, pid := range append(kids, nu) {
				_ = unix.Setpriority(unix.PRIO_PROCESS, pid, 0)
			}
			return true
		})
	}()
	_, err = benchCycleBaton(ctx, s)
	return errors.Join(err, <-restored)
}

// benchChildPIDs lists pid's children from /proc/PID/task/*/children.
func benchChildPIDs(pid int) []int {
	var out []int
	files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(field); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// benchPumaHotRestart sends USR2 to puma (single mode: it re-execs itself on
// the same socket) and waits until a new boot answers.
func benchPumaHotRestart(ctx context.Context, s *benchServer) error {
	pid, err := readPid(s.pidfile)
	if err != nil {
		return err
	}
	before, err := benchGet(ctx, s.url())
	if err != nil {
		return err
	}
	bootOf := func(body string) string {
		for _, f := range strings.Fields(body) {
			if v, ok := strings.CutPrefix(f, "boot="); ok {
				return v
			}
		}
		return ""
	}
	if err := benchKill(pid, syscall.SIGUSR2); err != nil {
		return err
	}
	return benchPoll(ctx, 30*time.Second, "puma's new boot answers", func() bool {
		body, err := benchGet(ctx, s.url())
		return err == nil && bootOf(body) != bootOf(before)
	})
}

// BenchmarkIdleMaster measures an idle baton master running 2 demo-app
// workers: CPU clock ticks (utime+stime from /proc/PID/stat) over 10 seconds
// (target: 0, no polling) and resident memory (target: under 15 MB).
func BenchmarkIdleMaster(b *testing.B) {
	ctx, cancel := context.WithTimeout(testContext(b), 5*time.Minute)
	defer cancel()
	s := newBenchServer(b, "baton")
	s.mustStart(ctx)
	pid, err := readPid(s.pidfile)
	if err != nil {
		b.Fatal(err)
	}
	var ticks uint64
	var rss float64
	b.ResetTimer()
	for range b.N {
		t0, err := benchCPUTicks(pid)
		if err != nil {
			b.Fatal(err)
		}
		if err := benchSleep(ctx, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		t1, err := benchCPUTicks(pid)
		if err != nil {
			b.Fatal(err)
		}
		ticks += t1 - t0
		kb, err := benchRSSKB(pid)
		if err != nil {
			b.Fatal(err)
		}
		rss = max(rss, float64(kb)/1024)
	}
	b.StopTimer()
	b.ReportMetric(float64(ticks)/float64(b.N), "cpu-ticks/10s")
	b.ReportMetric(rss, "rss-MB")
}

// benchCPUTicks returns utime+stime of pid (fields 14 and 15 of
// /proc/PID/stat), in clock ticks.
func benchCPUTicks(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15.
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return utime + stime, nil
}

// benchRSSKB returns VmRSS of pid in kB.
func benchRSSKB(pid int) (int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// BenchmarkThroughput compares the demo app's throughput under baton run
// (one worker, accepting directly on the inherited socket) with the same app
// run alone, with keep-alive and new-connection load, alternating the two
// for fairness on a shared machine (target: ratio at least 0.98).
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []load.Mode{load.KeepAlive, load.NewConn} {
		b.Run(mode.String(), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(testContext(b), 5*time.Minute)
			defer cancel()
			under := newBenchServer(b, "baton")
			under.workers = 1
			under.argv = slices.Clone(under.argv)
			under.argv[slices.Index(under.argv, "--workers")+1] = "1"
			under.mustStart(ctx)

			aloneAddr := benchFreeAddr(b)
			alone := exec.Command(batonBin, "demo-app", "--listen", aloneAddr)
			alone.Env = append(os.Environ(), ownerOf(b).marker)
			waited, err := startManaged(alone)
			if err != nil {
				b.Fatal(err)
			}
			ownerOf(b).adopt(alone.Process.Pid)
			defer func() {
				alone.Process.Signal(syscall.SIGTERM)
				<-waited
			}()
			if err := waitFor(ctx, 10*time.Second, func() (bool, error) {
				_, err := benchGet(ctx, "http://"+aloneAddr+"/")
				return err == nil, err
			}); err != nil {
				b.Fatal(err)
			}

			measure := func(url string) float64 {
				run, err := load.Start(ctx, load.Options{Target: url, Concurrency: benchConcurrency, Mode: mode, Duration: 1500 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				res := run.Wait()
				if res.Failed > 0 {
					b.Fatalf("%s: %s", url, res)
				}
				return float64(res.OK) / res.Elapsed.Seconds()
			}
			var rAlone, rUnder float64
			b.ResetTimer()
			const rounds = 4 // short alternating rounds even out a shared machine's noise
			for range b.N {
				for range rounds {
					rAlone += measure("http://" + aloneAddr + "/")
					rUnder += measure(under.url())
				}
			}
			b.StopTimer()
			n := float64(b.N * rounds)
			b.ReportMetric(rAlone/n, "alone-req/s")
			b.ReportMetric(rUnder/n, "baton-req/s")
			b.ReportMetric(rUnder/rAlone, "ratio")
		})
	}
}
