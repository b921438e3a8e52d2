package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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
// request.
func TestInitScript(t *testing.T) {
	for _, f := range []flavor{flavorNginx, flavorBaton} {
		t.Run(string(f), func(t *testing.T) {
			var d *initd
			if f == flavorNginx {
				d = initdNginx(t)
			} else {
				d = initdBaton(t)
			}
			initdLifeCycle(t, d)
		})
	}
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
	if err := gone.Run(); err != nil {
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
			out, err := cmd.CombinedOutput()
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
			out, err := exec.Command(shellcheck, append(set.args, set.files...)...).CombinedOutput()
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
		out, err := exec.CommandContext(ctx, "/bin/sh", filepath.Join(scripts, "verify-units.sh"), batonBin).CombinedOutput()
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
