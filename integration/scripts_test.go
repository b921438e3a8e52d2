package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file tests scripts/: the LSB init script drives a real nginx and a
// real baton master through its actions (start, status, upgrade under load,
// rollback after a manual `baton upgrade start`, reload, stop, a failing
// upgrade), and every script and unit passes shellcheck and a strict
// systemd-analyze verify.

// initdEnvDefaults is the variable that points the init script at its
// defaults file instead of /etc/default/NAME.
const initdEnvDefaults = "BATON_DEFAULTS"

// initdRoot is the repository's scripts directory.
func initdRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate scripts_test.go")
	}
	return filepath.Join(filepath.Dir(file), "..", "scripts")
}

// initd is the init script installed for one peer: its defaults file and
// the peer it manages. The test, not the harness, starts the peer, through
// the script.
type initd struct {
	p        *peer
	script   string
	defaults string
	runs     int
}

// initdResult is one finished run of the init script.
type initdResult struct {
	action string
	code   int
	out    string // stdout and stderr, interleaved
}

// initdShellWord quotes s for the sh defaults file.
func initdShellWord(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// newInitd writes the defaults file for p with the settings in kv (values
// are written as single-quoted shell words unless they start with '"').
func newInitd(t *testing.T, p *peer, kv [][2]string) *initd {
	t.Helper()
	d := &initd{
		p:        p,
		script:   filepath.Join(initdRoot(t), "init.d", "baton"),
		defaults: filepath.Join(p.dir, "defaults"),
	}
	var b strings.Builder
	b.WriteString("# written by baton's integration tests (scripts_test.go)\n")
	for _, e := range kv {
		v := e[1]
		if !strings.HasPrefix(v, `"`) {
			v = initdShellWord(v)
		}
		fmt.Fprintf(&b, "%s=%s\n", e[0], v)
	}
	writeFile(t, d.defaults, b.String(), 0o644)
	return d
}

// initdNginx lays out an nginx peer (the harness's configuration: two
// workers, TCP and unix listeners, /health) and an init script for it,
// without starting nginx.
func initdNginx(t *testing.T) *initd {
	t.Helper()
	requirePeer(t, nginxPath)
	p := newPeer(t, flavorNginx, peerOptions{})
	for _, dir := range []string{"tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"} {
		if err := os.MkdirAll(filepath.Join(p.dir, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.bin = p.installBin(t, nginxPath, "nginx")
	p.logs = append(p.logs, filepath.Join(p.dir, "log", "error.log"))
	args := strings.Join([]string{"-p", initdShellWord(p.dir + "/"), "-c", initdShellWord(filepath.Join(p.dir, "nginx.conf")),
		"-e", initdShellWord(filepath.Join(p.dir, "log", "error.log"))}, " ")
	return newInitd(t, p, [][2]string{
		{"NAME", "test-nginx"},
		{"DAEMON", p.bin},
		{"DAEMON_ARGS", args},
		{"BACKGROUND", "no"},
		{"PIDFILE", p.pidfile},
		{"FLAVOR", "nginx"},
		{"CONFIGTEST", `"$DAEMON -t -q $DAEMON_ARGS"`},
		{"PREFLIGHT", `"$DAEMON -t -q $DAEMON_ARGS"`},
		{"CHECKS", p.check()},
		{"BATON", batonBin},
		{"SPAWN_TIMEOUT", "20"},
		{"DRAIN_TIMEOUT", "30"},
		{"VERIFY_FOR", "1"},
		{"STOP_TIMEOUT", "10"},
	})
}

// initdBaton lays out a baton peer (`baton run` of the demo app, as the
// harness's startBaton runs it) and an init script for it, without starting
// the master. The script detaches the master (BACKGROUND=yes).
func initdBaton(t *testing.T) *initd {
	t.Helper()
	p := newPeer(t, flavorBaton, peerOptions{})
	p.bin = p.installBin(t, batonBin, "baton")
	app := p.installBin(t, batonBin, "app")
	logPath := filepath.Join(p.dir, "log", "master.log")
	p.logs = append(p.logs, logPath)
	words := []string{"run", "--pidfile", p.pidfile,
		"--listen", p.addr, "--listen", "unix:" + p.sock,
		"--workers", strconv.Itoa(p.workers), "--ready", "notify",
		"--dir", p.current, "--envfile", filepath.Join(p.current, "app.env"),
		"--stop-timeout", "10s", "--", app, "demo-app"}
	for i, w := range words {
		words[i] = initdShellWord(w)
	}
	return newInitd(t, p, [][2]string{
		{"NAME", "test-app"},
		{"BATON", batonBin}, // the orchestrator; DAEMON is the master's own copy
		{"DAEMON", p.bin},
		{"DAEMON_ARGS", strings.Join(words, " ")},
		{"BACKGROUND", "yes"},
		{"LOGFILE", logPath},
		{"PIDFILE", p.pidfile},
		{"FLAVOR", "baton"},
		{"CHECKS", p.check()},
		{"SPAWN_TIMEOUT", "20"},
		{"DRAIN_TIMEOUT", "30"},
		{"VERIFY_FOR", "1"},
		{"STOP_TIMEOUT", "10"},
	})
}

// initdUnicorn lays out a unicorn peer (the harness's configuration:
// preload_app, working_directory through the `current` symlink) and an init
// script that starts it daemonized (-D), without starting it.
func initdUnicorn(t *testing.T) *initd {
	t.Helper()
	requirePeer(t, unicornPath, "/usr/bin/ruby")
	p := newPeer(t, flavorUnicorn, peerOptions{})
	p.bin = p.installBin(t, unicornPath, "unicorn")
	logPath := filepath.Join(p.dir, "log", "unicorn.log")
	p.logs = append(p.logs, logPath)
	conf := filepath.Join(p.dir, "unicorn.rb")
	writeFile(t, conf, fmt.Sprintf(`# written by baton's integration tests (scripts_test.go)
worker_processes %d
working_directory %q
listen %q, :backlog => 1024
listen %q, :backlog => 1024
pid %q
stderr_path %q
stdout_path %q
preload_app true
timeout 30
`, p.workers, p.current, p.addr, p.sock, p.pidfile, logPath, logPath), 0o644)
	return newInitd(t, p, [][2]string{
		{"NAME", "test-unicorn"},
		{"DAEMON", p.bin},
		{"DAEMON_ARGS", "-D -c " + initdShellWord(conf)},
		{"DIR", p.current},
		{"PIDFILE", p.pidfile},
		{"FLAVOR", "unicorn"},
		{"CHECKS", p.check()},
		{"BATON", batonBin},
		{"SPAWN_TIMEOUT", "60"},
		{"VERIFY_FOR", "1"},
	})
}

// initdGunicorn lays out a gunicorn peer (the harness's flags: --preload,
// daemonized) and an init script that starts it from DIR, the `current`
// symlink, without starting it.
func initdGunicorn(t *testing.T) *initd {
	t.Helper()
	requirePeer(t, gunicornPath, "/usr/bin/python3")
	p := newPeer(t, flavorGunicorn, peerOptions{})
	p.bin = p.installBin(t, gunicornPath, "gunicorn")
	logPath := filepath.Join(p.dir, "log", "gunicorn.log")
	p.logs = append(p.logs, logPath)
	args := []string{"-D", "--pid", p.pidfile, "-w", strconv.Itoa(p.workers),
		"-b", p.addr, "-b", "unix:" + p.sock, "--preload", "--graceful-timeout", "10",
		"--error-logfile", logPath, "--log-level", "info", "app:app"}
	for i, a := range args {
		args[i] = initdShellWord(a)
	}
	return newInitd(t, p, [][2]string{
		{"NAME", "test-gunicorn"},
		{"DAEMON", p.bin},
		{"DAEMON_ARGS", strings.Join(args, " ")},
		{"DIR", p.current},
		{"PIDFILE", p.pidfile},
		{"FLAVOR", "gunicorn"},
		{"CHECKS", p.check()},
		{"BATON", batonBin},
		{"SPAWN_TIMEOUT", "60"},
		{"VERIFY_FOR", "1"},
	})
}

// run runs the init script's action to completion (bounded by ctx), with the
// test's marker, in its own process group, its output in a file (a daemon it
// starts may keep its stdout or stderr), and adopts the masters the pid files
// name afterwards.
func (d *initd) run(ctx context.Context, t testing.TB, action string) initdResult {
	t.Helper()
	d.runs++
	outPath := filepath.Join(d.p.dir, "log", fmt.Sprintf("initd-%02d-%s.out", d.runs, action))
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "/bin/sh", d.script, action)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = d.p.dir
	cmd.Env = append(os.Environ(), d.p.owner.marker, initdEnvDefaults+"="+d.defaults)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	waited, err := startManaged(cmd)
	if err != nil {
		t.Fatalf("start init script %s: %v", action, err)
	}
	d.p.owner.adopt(cmd.Process.Pid)
	err = <-waited
	r := initdResult{action: action}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("init script %s: %v", action, err)
	}
	data, _ := os.ReadFile(outPath)
	r.out = string(data)
	t.Logf("init.d %s: exit %d\n%s", action, r.code, indent(r.out))
	for _, f := range d.p.pidfiles() {
		if pid, err := readPid(f); err == nil {
			d.p.owner.adopt(pid)
		}
	}
	return r
}

// want runs action and fails the test unless it exits with code.
func (d *initd) want(ctx context.Context, t testing.TB, action string, code int) initdResult {
	t.Helper()
	r := d.run(ctx, t, action)
	if r.code != code {
		t.Fatalf("init.d %s: exit %d, want %d\n%s", action, r.code, code, r.out)
	}
	return r
}

// initdUnderLoad runs step while client load (keep-alive over TCP and one
// connection per request over the unix socket) flows, and fails the test if
// any request failed or any version in want never answered. step calls flow
// to wait until the load has made progress at that point.
func initdUnderLoad(ctx context.Context, t *testing.T, p *peer, step func(flow func()), want ...string) {
	t.Helper()
	l := startLoad(ctx, t, p)
	flow := func() { l.progress(ctx, t, 20) }
	flow()
	step(flow)
	flow()
	res := l.stop(t)
	assertNoFailures(t, res...)
	assertSawVersions(t, res, want...)
}

// TestInitScript drives a real nginx and a real baton master through the init
// script's life cycle, with load during everything that must not drop a
// request; and unicorn and gunicorn, which the same script manages through
// FLAVOR, DIR and STOP_SIGNALS, through start, upgrade, rollback and stop.
func TestInitScript(t *testing.T) {
	t.Parallel() // long and self-contained: see doc.go, Time
	for _, tc := range []struct {
		flavor flavor
		setup  func(*testing.T) *initd
		cycle  func(*testing.T, *initd)
	}{
		{flavorNginx, initdNginx, initdLifeCycle},
		{flavorBaton, initdBaton, initdLifeCycle},
		{flavorUnicorn, initdUnicorn, initdShortCycle},
		{flavorGunicorn, initdGunicorn, initdShortCycle},
	} {
		t.Run(string(tc.flavor), func(t *testing.T) {
			tc.cycle(t, tc.setup(t))
		})
	}
}

// initdRotate is what Debian's logrotate snippets do: move the log aside,
// then the "rotate" action. nginx must reopen its error log at the old path
// (the master, on USR1); a baton master, without --log-file here, must only
// take the signal and keep serving.
func initdRotate(ctx context.Context, t *testing.T, d *initd) {
	t.Helper()
	p := d.p
	var errorLog string
	if p.flavor == flavorNginx {
		errorLog = filepath.Join(p.dir, "log", "error.log")
		if err := os.Rename(errorLog, errorLog+".1"); err != nil {
			t.Fatal(err)
		}
	}
	d.want(ctx, t, "rotate", 0)
	if errorLog != "" {
		mustWait(ctx, t, 10*time.Second, "nginx to reopen "+errorLog, func() (bool, error) {
			_, err := os.Stat(errorLog)
			return err == nil, err
		})
	}
	p.wantServing(ctx, t, "v1")
}

// initdShortCycle is start, upgrade under load, a pending upgrade that
// status reports and rollback undoes, and stop (the flavor's graceful
// signal: the workers finish, nothing is killed).
func initdShortCycle(t *testing.T, d *initd) {
	p := d.p
	ctx := testContext(t)
	d.want(ctx, t, "status", 3)
	d.want(ctx, t, "start", 0)
	first := p.waitReady(ctx, t)
	d.want(ctx, t, "status", 0)

	runsNew := p.replaceBinary(t)
	p.release(t, "v2")
	initdUnderLoad(ctx, t, p, func(func()) { d.want(ctx, t, "upgrade", 0) }, "v1", "v2")
	second := p.masterPID(t)
	if second == first || alive(first) {
		t.Fatalf("upgrade: pid file names %d, old master %d alive: %v", second, first, alive(first))
	}
	if err := runsNew(second); err != nil {
		t.Errorf("upgrade: the new master does not run the new build: %v", err)
	}
	p.wantServing(ctx, t, "v2")
	p.wantPidfiles(t, second)

	p.release(t, "v3")
	initdUnderLoad(ctx, t, p, func(flow func()) {
		d.want(ctx, t, "upgrade-start", 0)
		flow() // served by v3 alone
		r := d.want(ctx, t, "status", 0)
		if !strings.Contains(r.out, "upgrade pending") {
			t.Errorf("status does not report the pending upgrade:\n%s", r.out)
		}
		p.release(t, "v2") // revert the release, then roll back
		d.want(ctx, t, "rollback", 0)
		p.wantServing(ctx, t, "v2")
	}, "v2", "v3")
	p.wantPidfiles(t, second)

	workers := p.workersOf(second)
	d.want(ctx, t, "stop", 0)
	for _, pr := range append(workers, proc{pid: second}) {
		if alive(pr.pid) {
			t.Errorf("stop returned with %d alive", pr.pid)
		}
	}
	d.want(ctx, t, "status", 3)
}

func initdLifeCycle(t *testing.T, d *initd) {
	p := d.p
	ctx := testContext(t)

	// Not started yet: status says so (LSB 3), stop is a success.
	d.want(ctx, t, "status", 3)
	d.want(ctx, t, "stop", 0)

	// start returns once the master is up (and, for baton, its workers
	// ready): it serves at once, without a wait in the test.
	d.want(ctx, t, "start", 0)
	first := p.masterPID(t)
	if code, body, err := p.get(ctx, "/"); err != nil || code != 200 || versionOf(body) != "v1" {
		t.Fatalf("right after start: GET / = %d %q %v, want 200 from v1", code, truncate(body, 80), err)
	}
	p.waitReady(ctx, t)
	r := d.want(ctx, t, "status", 0)
	if !strings.Contains(r.out, "running (pid "+strconv.Itoa(first)+")") {
		t.Errorf("status does not name master %d:\n%s", first, r.out)
	}
	r = d.want(ctx, t, "start", 0) // already running: success, nothing started
	if !strings.Contains(r.out, "already running") || p.masterPID(t) != first {
		t.Errorf("second start: master %d -> %d\n%s", first, p.masterPID(t), r.out)
	}
	d.want(ctx, t, "configtest", 0)
	d.want(ctx, t, "reopen-logs", 0)
	initdRotate(ctx, t, d)

	// upgrade: the checked binary upgrade, committed, under load.
	p.replaceBinary(t)
	p.release(t, "v2")
	initdUnderLoad(ctx, t, p, func(func()) { d.want(ctx, t, "upgrade", 0) }, "v1", "v2")
	second := p.masterPID(t)
	if second == first {
		t.Fatalf("upgrade: the pid file still names master %d", first)
	}
	if alive(first) {
		t.Errorf("upgrade: old master %d is still alive", first)
	}
	p.wantServing(ctx, t, "v2")
	p.wantPidfiles(t, second)
	p.wantSocket(ctx, t)

	// reload: HUP, the same master; nginx re-reads its configuration, a
	// baton master starts a new generation, which reads the envfile.
	p.release(t, "v3")
	initdUnderLoad(ctx, t, p, func(func()) {
		d.want(ctx, t, "reload", 0)
		p.wantServing(ctx, t, "v3")
	}, "v2", "v3")
	if got := p.masterPID(t); got != second {
		t.Errorf("reload replaced master %d with %d", second, got)
	}

	// restart: stop, then start; a gap without service, so no load.
	d.want(ctx, t, "restart", 0)
	restarted := p.waitReady(ctx, t)
	if restarted == second || alive(second) {
		t.Fatalf("restart: pid file names %d, master %d alive: %v", restarted, second, alive(second))
	}
	second = restarted
	p.wantServing(ctx, t, "v3")

	// A manual `baton upgrade start` (no commit), then the script's rollback:
	// the old master gets its workers back and the new one goes.
	p.release(t, "v4")
	initdUnderLoad(ctx, t, p, func(flow func()) {
		res := batonCmd(ctx, t, "upgrade", "start", "--pidfile", p.pidfile, "--check", p.check(), "--verify-for", "1s")
		res.wantCode(t, 0)
		pending := p.masterPID(t)
		if pending == second {
			t.Fatalf("upgrade start: the pid file still names master %d", second)
		}
		flow() // served by v4 alone
		r := d.want(ctx, t, "status", 0)
		if !strings.Contains(r.out, "upgrade pending") {
			t.Errorf("status does not report the pending upgrade:\n%s", r.out)
		}
		// Roll the release back first, as an operator would: a baton
		// master's rollback (HUP) starts workers from the envfile on disk.
		p.release(t, "v3")
		d.want(ctx, t, "rollback", 0)
		mustWait(ctx, t, 10*time.Second, "the rolled-back new master to exit", func() (bool, error) {
			return !alive(pending), fmt.Errorf("master %d alive", pending)
		})
		p.wantServing(ctx, t, "v3")
	}, "v3", "v4")
	p.wantPidfiles(t, second)

	// upgrade-start, then commit: both from the script.
	p.release(t, "v5")
	initdUnderLoad(ctx, t, p, func(flow func()) {
		d.want(ctx, t, "upgrade-start", 0)
		if !alive(second) {
			t.Fatalf("upgrade-start: old master %d is gone before the commit", second)
		}
		// Parked: the old master keeps its listeners but no workers, so
		// what was verified is the new generation alone. (An nginx master
		// that was itself started by an upgrade honours WINCH too:
		// nginx.c sets ngx_daemonized for an inherited master.)
		if ws := p.workersOf(second); len(ws) != 0 {
			t.Errorf("upgrade-start: old master %d still has %d workers; it should be parked without any", second, len(ws))
		}
		flow()
		d.want(ctx, t, "commit", 0)
	}, "v3", "v5")
	third := p.masterPID(t)
	if third == second || alive(second) {
		t.Fatalf("commit: pid file names %d, old master %d alive: %v", third, second, alive(second))
	}
	p.wantServing(ctx, t, "v5")
	p.wantPidfiles(t, third)

	// A failing upgrade: non-zero exit with a clear message, the old
	// generation still serving, no request lost. nginx: the new
	// configuration's /health answers 500. baton: the new master's binary
	// exits at once (a baton master's rollback re-reads the envfile, so a
	// failing app.env would fail the old generation too).
	initdUnderLoad(ctx, t, p, func(func()) {
		if p.flavor == flavorNginx {
			p.release(t, "v6")
			p.setFail(t, true)
		} else {
			p.breakBinary(t, "exits")
		}
		r := d.run(ctx, t, "upgrade")
		if r.code != 1 {
			t.Errorf("failing upgrade: exit %d, want 1 (rolled back)\n%s", r.code, r.out)
		}
		if !strings.Contains(r.out, "rolled back: the old generation is serving") {
			t.Errorf("failing upgrade: no clear message:\n%s", r.out)
		}
	}, "v5")
	if got := p.masterPID(t); got != third {
		t.Errorf("after the failed upgrade the pid file names %d, want the old master %d", got, third)
	}
	p.wantServing(ctx, t, "v5")
	p.wantHealthy(ctx, t)
	p.wantPidfiles(t, third)
	d.want(ctx, t, "status", 0)

	// stop: QUIT, and the script returns once the master has exited.
	workers := p.workersOf(third)
	d.want(ctx, t, "stop", 0)
	if alive(third) {
		t.Errorf("stop returned with master %d alive", third)
	}
	mustWait(ctx, t, 10*time.Second, "the workers to exit", func() (bool, error) {
		for _, w := range workers {
			if alive(w.pid) {
				return false, fmt.Errorf("worker %d alive", w.pid)
			}
		}
		return true, nil
	})
	d.want(ctx, t, "status", 3)
	if _, _, err := p.get(ctx, "/"); err == nil {
		t.Errorf("GET / answered after stop")
	}
	d.want(ctx, t, "reload", 7)
	d.want(ctx, t, "try-restart", 0) // not running: nothing to restart
	d.want(ctx, t, "status", 3)
}

// TestInitScriptStatusCodes checks the LSB status codes and the refusals
// that need no running server, and that a pid file naming a live process
// that is not DAEMON (the harness's witness) gets no signal from stop.
func TestInitScriptStatusCodes(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "x.pid")
	good := filepath.Join(dir, "defaults")
	writeFile(t, good, "NAME=x\nDAEMON=/bin/sleep\nPIDFILE="+pidfile+"\nBATON="+initdShellWord(batonBin)+"\n", 0o644)
	noBaton := filepath.Join(dir, "defaults-nobaton")
	writeFile(t, noBaton, "NAME=x\nDAEMON=/bin/sleep\nPIDFILE="+pidfile+"\nBATON="+filepath.Join(dir, "no-baton")+"\n", 0o644)
	badTimeout := filepath.Join(dir, "defaults-badtimeout")
	writeFile(t, badTimeout, "NAME=x\nDAEMON=/bin/sleep\nPIDFILE="+pidfile+"\nSTOP_TIMEOUT=10s\n", 0o644)
	script := filepath.Join(initdRoot(t), "init.d", "baton")
	ctx := testContext(t)
	o := ownerOf(t)

	// A process that has exited: its pid is dead (recycling it within the
	// test is practically impossible).
	gone := exec.Command("/bin/true")
	if _, err := initdCombined(gone); err != nil {
		t.Fatal(err)
	}
	witness, record := initdWitness(ctx, t, o, filepath.Join(dir, "witness.record"))

	for _, tc := range []struct {
		name     string
		pidfile  string // "" removes it
		defaults string // "" means good
		action   string
		code     int
	}{
		{name: "status-no-pidfile", action: "status", code: 3},
		{name: "status-dead-pid", pidfile: strconv.Itoa(gone.Process.Pid), action: "status", code: 1},
		{name: "status-foreign-pid", pidfile: strconv.Itoa(witness), action: "status", code: 1},
		{name: "status-garbage", pidfile: "not a pid", action: "status", code: 4},
		{name: "status-no-defaults", defaults: filepath.Join(dir, "missing"), action: "status", code: 4},
		{name: "status-bad-timeout", defaults: badTimeout, action: "status", code: 4},
		{name: "start-no-defaults", defaults: filepath.Join(dir, "missing"), action: "start", code: 6},
		{name: "start-bad-timeout", defaults: badTimeout, action: "start", code: 6},
		{name: "stop-not-running", action: "stop", code: 0},
		{name: "stop-foreign-pid", pidfile: strconv.Itoa(witness), action: "stop", code: 0},
		{name: "reload-not-running", action: "reload", code: 7},
		{name: "reload-foreign-pid", pidfile: strconv.Itoa(witness), action: "reload", code: 7},
		{name: "reopen-logs-not-running", action: "reopen-logs", code: 7},
		{name: "rotate-not-running", action: "rotate", code: 7},
		{name: "upgrade-not-running", action: "upgrade", code: 7},
		{name: "upgrade-no-baton", defaults: noBaton, action: "upgrade", code: 5},
		{name: "configtest-none", action: "configtest", code: 0},
		{name: "bad-action", action: "frobnicate", code: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(pidfile)
			if tc.pidfile != "" {
				writeFile(t, pidfile, tc.pidfile+"\n", 0o644)
			}
			defaults := tc.defaults
			if defaults == "" {
				defaults = good
			}
			cmd := exec.CommandContext(ctx, "/bin/sh", script, tc.action)
			cmd.Env = append(os.Environ(), o.marker, initdEnvDefaults+"="+defaults)
			out, err := initdCombined(cmd)
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("init script %s: %v", tc.action, err)
			}
			if code != tc.code {
				t.Errorf("%s: exit %d, want %d\n%s", tc.action, code, tc.code, out)
			}
		})
	}
	if !alive(witness) {
		t.Errorf("the witness %d is gone", witness)
	}
	if data, err := os.ReadFile(record); err != nil || len(data) != 0 {
		t.Errorf("the witness, not DAEMON, got signals: %q %v", data, err)
	}
}

// initdCombined runs cmd to completion like CombinedOutput, but through the
// harness's startManaged, so that its reaper (this binary is a subreaper)
// leaves the child to os/exec's Wait.
func initdCombined(cmd *exec.Cmd) ([]byte, error) {
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	waited, err := startManaged(cmd)
	if err != nil {
		return nil, err
	}
	err = <-waited
	return []byte(out.String()), err
}

// initdWitness starts the harness's witness helper (a process that records
// the signals it gets in record) and returns its pid once it is ready.
func initdWitness(ctx context.Context, t testing.TB, o *owner, record string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, os.Args[0], record)
	cmd.Env = append(os.Environ(), envHelper+"=witness", o.marker)
	cmd.Stdout = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if _, err := startManaged(cmd); err != nil {
		w.Close()
		t.Fatalf("start witness: %v", err)
	}
	w.Close()
	o.adopt(cmd.Process.Pid)
	if _, err := io.ReadAll(r); err != nil { // EOF: the witness closed stdout, ready
		t.Fatal(err)
	}
	return cmd.Process.Pid, record
}

// initdRequireTool skips (or, with BATON_REQUIRE_PEERS=1, fails) the test when a
// program is missing.
func initdRequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("%s is missing and %s=1: %v", name, EnvRequirePeers, err)
		}
		t.Skipf("%s is not installed; set %s=1 to fail instead", name, EnvRequirePeers)
	}
	return path
}

// TestScriptsShellcheck runs shellcheck on every script under scripts/: the
// executables as their #! line says, the defaults files as sh.
func TestScriptsShellcheck(t *testing.T) {
	shellcheck := initdRequireTool(t, "shellcheck")
	root := initdRoot(t)
	var scripts, defaults []string
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case strings.HasPrefix(rel, "default"+string(filepath.Separator)):
			defaults = append(defaults, path)
		case strings.HasSuffix(rel, ".sh"), strings.HasPrefix(rel, "init.d"+string(filepath.Separator)):
			scripts = append(scripts, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 2 || len(defaults) < 2 {
		t.Fatalf("found scripts %v and defaults %v; want the init script, verify-units.sh and two defaults files", scripts, defaults)
	}
	for _, set := range []struct {
		name  string
		args  []string
		files []string
	}{
		{name: "scripts", files: scripts},
		{name: "defaults", args: []string{"-s", "sh"}, files: defaults},
	} {
		t.Run(set.name, func(t *testing.T) {
			out, err := initdCombined(exec.Command(shellcheck, append(set.args, set.files...)...))
			if err != nil {
				t.Errorf("shellcheck %v: %v\n%s", set.files, err, out)
			}
		})
	}
}

// TestSystemdUnitsVerify runs scripts/verify-units.sh, the same strict
// `systemd-analyze verify` CI runs, with the binary this run built at the
// path the units name. A unit with an unknown key must fail it: the check
// can fail.
func TestSystemdUnitsVerify(t *testing.T) {
	initdRequireTool(t, "systemd-analyze")
	if _, err := os.Stat("/lib/systemd/system/nginx.service"); err != nil {
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("Debian's nginx.service (package nginx-common) is missing and %s=1: %v", EnvRequirePeers, err)
		}
		t.Skipf("Debian's nginx.service is not installed (apt-get install nginx-light); the drop-in extends it")
	}
	root := initdRoot(t)
	verify := func(t *testing.T, scripts string) (string, error) {
		ctx := testContext(t)
		out, err := initdCombined(exec.CommandContext(ctx, "/bin/sh", filepath.Join(scripts, "verify-units.sh"), batonBin))
		return string(out), err
	}
	t.Run("shipped", func(t *testing.T) {
		out, err := verify(t, root)
		if err != nil {
			t.Fatalf("verify-units.sh: %v\n%s", err, out)
		}
		for _, u := range []string{"baton@verify.service", "baton@verify.socket", "nginx.service"} {
			if !strings.Contains(out, u) {
				t.Errorf("verify-units.sh did not verify %s:\n%s", u, out)
			}
		}
	})
	for _, tc := range []struct {
		name, file, from, to, want string
	}{
		{name: "unknown-key", file: "systemd/baton@.service", from: "\n[Service]\n", to: "\n[Service]\nNoSuchKey=1\n", want: "NoSuchKey"},
		{name: "missing-binary", file: "systemd/nginx.service.d/baton-upgrade.conf", from: "ExecReload=/usr/local/bin/baton", to: "ExecReload=/usr/local/bin/no-such-baton", want: "no-such-baton"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			if err := os.CopyFS(tmp, os.DirFS(root)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(tmp, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tc.from) {
				t.Fatalf("%s has no %q", tc.file, tc.from)
			}
			writeFile(t, path, strings.Replace(string(data), tc.from, tc.to, 1), 0o644)
			out, err := verify(t, tmp)
			if err == nil {
				t.Fatalf("verify-units.sh passed a broken %s:\n%s", tc.file, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("verify-units.sh failed without naming %q:\n%s", tc.want, out)
			}
		})
	}
}

// initdUnit is a unit file with its drop-ins, as systemd merges them: every
// key's values in order, an empty assignment resetting the list.
type initdUnit map[string][]string

// initdParseUnit reads the unit files at paths, in order (the unit, then its
// drop-ins). Sections are not told apart: the keys used here are unique.
func initdParseUnit(t testing.TB, paths ...string) initdUnit {
	t.Helper()
	u := initdUnit{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, line)
			}
			if v == "" {
				delete(u, k)
				continue
			}
			u[k] = append(u[k], v)
		}
	}
	return u
}

// one returns the single (last) value of key.
func (u initdUnit) one(t testing.TB, key string) string {
	t.Helper()
	v := u[key]
	if len(v) == 0 {
		t.Fatalf("unit has no %s=", key)
	}
	return v[len(v)-1]
}

// initdCommand splits a unit's command line as systemd does for the lines
// used here: an optional "-@:+!" prefix, words separated by spaces, double or
// single quotes around a word, and a bare $NAME replaced by the words of
// env[NAME] (nothing when it is empty).
func initdCommand(t testing.TB, line string, env map[string]string) []string {
	t.Helper()
	line = strings.TrimLeft(line, "-@:+!")
	var words []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		var w string
		switch line[0] {
		case '"', '\'':
			end := strings.IndexByte(line[1:], line[0])
			if end < 0 {
				t.Fatalf("unbalanced quote in %q", line)
			}
			w, line = line[1:end+1], line[end+2:]
		default:
			w, line, _ = strings.Cut(line, " ")
			if name, ok := strings.CutPrefix(w, "$"); ok {
				words = append(words, strings.Fields(env[name])...)
				continue
			}
		}
		words = append(words, w)
	}
	return words
}

// initdFlag returns the value of --name in a command's words.
func initdFlag(t testing.TB, words []string, name string) string {
	t.Helper()
	for i, w := range words {
		if w == name && i+1 < len(words) {
			return words[i+1]
		}
	}
	t.Fatalf("%v has no %s", words, name)
	return ""
}

// initdNotify is a NOTIFY_SOCKET standing in for systemd's: it records every
// datagram a master sends.
type initdNotify struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func newInitdNotify(t testing.TB, path string) *initdNotify {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &initdNotify{path: path, conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, strings.Split(strings.TrimSpace(string(buf[:k])), "\n")...)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return n
}

// seen reports whether the assignment kv has been received.
func (n *initdNotify) seen(kv string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.msgs, kv)
}

// mainPID is the last MAINPID= received, or 0.
func (n *initdNotify) mainPID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.msgs) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(n.msgs[i], "MAINPID="); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	return 0
}

// initdHoldsSocket reports whether process pid has the socket with inode
// ino open (/proc/PID/fd/N -> "socket:[INO]").
func initdHoldsSocket(pid int, ino uint64) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && link == want {
			return true
		}
	}
	return false
}

// TestSystemdUnitCommands runs the shipped units' own command lines the way
// systemd would, with their paths moved into the test's directory: baton@'s
// ExecStart with the socket baton@.socket describes (LISTEN_FDS, LISTEN_PID)
// and a NOTIFY_SOCKET, its ExecReload (the checked upgrade) under load, then
// its KillSignal to the main pid; and the nginx drop-in's ExecReload against
// a real nginx. It also checks that the pid files, the flags and the
// timeouts the units name agree with each other and with Debian's
// nginx.service.
func TestSystemdUnitCommands(t *testing.T) {
	units := filepath.Join(initdRoot(t), "systemd")
	t.Run("baton@", func(t *testing.T) {
		svc := initdParseUnit(t, filepath.Join(units, "baton@.service"))
		sock := initdParseUnit(t, filepath.Join(units, "baton@.socket"))
		if got := svc.one(t, "Type"); got != "notify" {
			t.Errorf("Type=%s, want notify", got)
		}
		if got := svc.one(t, "NotifyAccess"); got != "main" {
			t.Errorf("NotifyAccess=%s, want main: with all, any process of the cgroup may send MAINPID= or STOPPING=1; the main pid moves through PIDFile=", got)
		}
		if got := svc.one(t, "KillMode"); got != "mixed" {
			t.Errorf("KillMode=%s, want mixed: the master alone gets the graceful signal", got)
		}

		p := newPeer(t, flavorBaton, peerOptions{})
		p.bin = p.installBin(t, batonBin, "baton")
		app := p.installBin(t, batonBin, "app")
		// The unit's paths, moved here; the instance is named "baton" so
		// that /run/baton/%i.pid is the peer's pid file.
		moved := strings.NewReplacer("%i", "baton", "/usr/local/bin/baton", p.bin,
			"/run/baton/", p.dir+"/", "/etc/baton/", p.dir+"/")
		env := map[string]string{"UPGRADE_OPTS": "--check " + p.check() + " --verify-for 1s"}
		start := initdCommand(t, moved.Replace(svc.one(t, "ExecStart")), env)
		reload := initdCommand(t, moved.Replace(svc.one(t, "ExecReload")), env)
		initdWantReloadBound(t, svc, initdCommand(t, svc.one(t, "ExecReload"), nil))
		pidfile := moved.Replace(svc.one(t, "PIDFile"))
		if pidfile != p.pidfile || initdFlag(t, start, "--pidfile") != pidfile || initdFlag(t, reload, "--pidfile") != pidfile {
			t.Fatalf("PIDFile=%s, ExecStart --pidfile %s and ExecReload --pidfile %s must agree", pidfile, initdFlag(t, start, "--pidfile"), initdFlag(t, reload, "--pidfile"))
		}
		sockPath := moved.Replace(sock.one(t, "ListenStream"))
		if sockPath != p.sock {
			t.Fatalf("ListenStream=%s, want it under RuntimeDirectory (%s)", sockPath, p.sock)
		}
		writeFile(t, initdFlag(t, start, "--config"), fmt.Sprintf("# written by scripts_test.go\nlisten = %s\nlisten = unix:%s\nworkers = %d\nready = notify\ndir = %s\nenvfile = %s\nstop-timeout = 10s\n",
			p.addr, p.sock, p.workers, p.current, filepath.Join(p.current, "app.env")), 0o644)
		writeFile(t, start[len(start)-1], "#!/bin/sh\nexec "+initdShellWord(app)+" demo-app\n", 0o755)

		// systemd's side: the listening socket, and the notify socket.
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false) // systemd leaves the file to the service
		lnFile, err := ln.File()
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		defer lnFile.Close()
		var st syscall.Stat_t
		if err := syscall.Fstat(int(lnFile.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		sockIno := st.Ino
		notify := newInitdNotify(t, filepath.Join(p.dir, "notify.sock"))

		ctx := testContext(t)
		logPath := filepath.Join(p.dir, "log", "master.log")
		p.logs = append(p.logs, logPath)
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		// LISTEN_PID must be the service's own pid: a shell sets it and
		// execs ExecStart, as systemd's child does.
		cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`}, start...)...)
		cmd.Env = append(os.Environ(), p.owner.marker, "NOTIFY_SOCKET="+notify.path,
			"LISTEN_FDS=1", "LISTEN_FDNAMES="+moved.Replace(sock.one(t, "FileDescriptorName")))
		cmd.ExtraFiles = []*os.File{lnFile}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Dir = p.dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if _, err := startManaged(cmd); err != nil {
			t.Fatalf("ExecStart: %v", err)
		}
		p.owner.adopt(cmd.Process.Pid)
		mustWait(ctx, t, 30*time.Second, "READY=1 from the master", func() (bool, error) {
			return notify.seen("READY=1"), nil
		})
		// Type=notify: READY=1 means serving, on both listeners.
		for _, get := range []func(context.Context, string) (int, string, error){p.get, p.getUnix} {
			if code, body, err := get(ctx, "/"); err != nil || code != 200 || versionOf(body) != "v1" {
				t.Fatalf("right after READY=1: GET / = %d %q %v", code, truncate(body, 80), err)
			}
		}
		first := p.waitReady(ctx, t)
		if first != cmd.Process.Pid {
			t.Fatalf("pid file names %d, ExecStart's process is %d", first, cmd.Process.Pid)
		}
		if !initdHoldsSocket(first, sockIno) {
			t.Fatalf("master %d does not hold the socket systemd passed (inode %d)", first, sockIno)
		}

		// systemctl reload: ExecReload, a checked upgrade to a new binary
		// and release, under load.
		runsNew := p.replaceBinary(t)
		p.release(t, "v2")
		initdUnderLoad(ctx, t, p, func(func()) {
			res := initdRunUnitCommand(ctx, t, p, reload)
			if res.code != 0 {
				t.Fatalf("ExecReload %v: exit %d\n%s", reload, res.code, res.out)
			}
		}, "v1", "v2")
		second := p.masterPID(t)
		if second == first || alive(first) {
			t.Fatalf("after ExecReload: pid file names %d, old master %d alive: %v", second, first, alive(first))
		}
		mustWait(ctx, t, 10*time.Second, "MAINPID= from the new master", func() (bool, error) {
			return notify.mainPID() == second, fmt.Errorf("last MAINPID=%d", notify.mainPID())
		})
		mustWait(ctx, t, 10*time.Second, "the new master and its workers to run the new build", func() (bool, error) {
			err := runsNew(second)
			return err == nil, err
		})
		if !initdHoldsSocket(second, sockIno) {
			t.Errorf("new master %d does not hold the socket systemd passed (inode %d)", second, sockIno)
		}
		p.wantServing(ctx, t, "v2")
		p.wantPidfiles(t, second)

		// systemctl stop: KillSignal to the main pid only (KillMode=mixed).
		// With NotifyAccess=main systemd ignored the new master's MAINPID=
		// (it was not main yet) and took the main pid from PIDFile= when
		// ExecReload succeeded: the pid file's master.
		workers := p.workersOf(second)
		sig := strings.TrimPrefix(svc.one(t, "KillSignal"), "SIG")
		if sig != "QUIT" {
			t.Fatalf("KillSignal=SIG%s, want SIGQUIT (graceful)", sig)
		}
		sendSignal(t, p.masterPID(t), syscall.SIGQUIT)
		mustWait(ctx, t, 30*time.Second, "the master and its workers to exit", func() (bool, error) {
			for _, pr := range append(workers, proc{pid: second}) {
				if alive(pr.pid) {
					return false, fmt.Errorf("%d alive", pr.pid)
				}
			}
			return true, nil
		})
		if !notify.seen("STOPPING=1") {
			t.Errorf("the master never sent STOPPING=1")
		}
	})

	t.Run("nginx.service.d", func(t *testing.T) {
		debian := "/lib/systemd/system/nginx.service"
		if _, err := os.Stat(debian); err != nil {
			requirePeer(t, debian)
		}
		unit := initdParseUnit(t, debian, filepath.Join(units, "nginx.service.d", "baton-upgrade.conf"))
		if got := unit.one(t, "Type"); got != "forking" {
			t.Errorf("Debian's nginx.service is Type=%s; the drop-in's comments assume forking", got)
		}
		if n := len(unit["ExecReload"]); n != 1 {
			t.Fatalf("nginx.service with the drop-in has %d ExecReload= lines, want 1 (the drop-in resets Debian's)", n)
		}
		reload := initdCommand(t, unit.one(t, "ExecReload"), nil)
		if got, want := initdFlag(t, reload, "--pidfile"), unit.one(t, "PIDFile"); got != want {
			t.Fatalf("drop-in --pidfile %s, Debian's PIDFile=%s", got, want)
		}
		initdWantReloadBound(t, unit, reload)

		p := startPeer(t, flavorNginx, peerOptions{})
		ctx := testContext(t)
		nginxArgs := fmt.Sprintf(" -p %s/ -c %s -e %s", p.dir, filepath.Join(p.dir, "nginx.conf"), filepath.Join(p.dir, "log", "error.log"))
		for i, w := range reload {
			switch {
			case w == "/usr/local/bin/baton":
				reload[i] = batonBin
			case w == unit.one(t, "PIDFile"):
				reload[i] = p.pidfile
			case strings.HasPrefix(w, "/usr/sbin/nginx "):
				reload[i] = p.bin + strings.TrimPrefix(w, "/usr/sbin/nginx") + nginxArgs
			case strings.HasPrefix(w, "http://127.0.0.1/"):
				reload[i] = p.url(strings.TrimPrefix(w, "http://127.0.0.1"))
			}
		}
		first := p.masterPID(t)
		p.replaceBinary(t)
		p.release(t, "v2")
		initdUnderLoad(ctx, t, p, func(func()) {
			res := initdRunUnitCommand(ctx, t, p, reload)
			if res.code != 0 {
				t.Fatalf("ExecReload %v: exit %d\n%s", reload, res.code, res.out)
			}
		}, "v1", "v2")
		second := p.masterPID(t)
		if second == first || alive(first) {
			t.Fatalf("after ExecReload: pid file names %d, old master %d alive: %v", second, first, alive(first))
		}
		p.wantServing(ctx, t, "v2")
		p.wantPidfiles(t, second)
	})
}

// initdWantReloadBound fails the test unless the unit's TimeoutStartSec=,
// which also bounds ExecReload, exceeds the longest reload: a failed upgrade
// with every timeout the command gives (--spawn-timeout, --drain-timeout,
// --verify-for, --check-timeout, --stop-timeout) used up: spawn, drain,
// verify and a check in flight, then the rollback's spawn (the old workers
// back) and three stop timeouts for the new master (QUIT, TERM, KILL).
func initdWantReloadBound(t testing.TB, unit initdUnit, reload []string) {
	t.Helper()
	d := map[string]time.Duration{}
	for _, f := range []string{"--spawn-timeout", "--drain-timeout", "--verify-for", "--check-timeout", "--stop-timeout"} {
		v, err := time.ParseDuration(initdFlag(t, reload, f))
		if err != nil {
			t.Fatal(err)
		}
		d[f] = v
	}
	worst := 2*d["--spawn-timeout"] + d["--drain-timeout"] + d["--verify-for"] + d["--check-timeout"] + 3*d["--stop-timeout"]
	limit, err := time.ParseDuration(unit.one(t, "TimeoutStartSec") + "s")
	if err != nil {
		t.Fatal(err)
	}
	if worst >= limit {
		t.Errorf("a failed upgrade may take %s, not less than TimeoutStartSec=%s, which bounds reloads: systemd would kill the rollback", worst, limit)
	}
}

// initdRunUnitCommand runs a unit's command line to completion, as the
// unit's control process, with its output in a log file.
func initdRunUnitCommand(ctx context.Context, t testing.TB, p *peer, words []string) initdResult {
	t.Helper()
	outPath := filepath.Join(p.dir, "log", "unit-command.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, words[0], words[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), p.owner.marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	waited, err := startManaged(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p.owner.adopt(cmd.Process.Pid)
	err = <-waited
	r := initdResult{action: strings.Join(words, " ")}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(outPath)
	r.out = string(data)
	t.Logf("%s: exit %d\n%s", r.action, r.code, indent(r.out))
	for _, f := range p.pidfiles() {
		if pid, err := readPid(f); err == nil {
			p.owner.adopt(pid)
		}
	}
	return r
}
