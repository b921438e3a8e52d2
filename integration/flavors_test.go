package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Paths of the real peers (Debian's packages). nginx must be started by an
// absolute path: on USR2 it re-executes its argv[0].
const (
	nginxPath    = "/usr/sbin/nginx"
	unicornPath  = "/usr/bin/unicorn"
	gunicornPath = "/usr/bin/gunicorn"
)

// startNginx starts Debian's nginx from a copy at bin/nginx (so a test can
// replace the binary it re-executes), daemonized: nginx honours WINCH only
// when daemonized (ngx_daemonized in ngx_process.c), as it runs in
// production. "daemon on" also means the foreground process exits once the
// listeners are bound, a start-up handshake. Two workers, a TCP and a unix
// listener; GET / answers "nginx version=V" and the worker pid; /health 200
// (500 after setFail).
func startNginx(t *testing.T, opts peerOptions) *peer {
	t.Helper()
	requirePeer(t, nginxPath)
	p := newPeer(t, flavorNginx, opts)
	for _, d := range []string{"tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.bin = p.installBin(t, nginxPath, "nginx")
	p.logs = append(p.logs, filepath.Join(p.dir, "log", "error.log"))
	ctx := testContext(t)
	cmd := exec.Command(p.bin, "-p", p.dir+"/", "-c", filepath.Join(p.dir, "nginx.conf"), "-e", filepath.Join(p.dir, "log", "error.log"))
	if opts.DaemonOff {
		// nginx ignores USR2 while its parent is the process that started
		// it: a shell starts it and exits once the pid file is written.
		script := fmt.Sprintf(`"$@" & while [ ! -s %q ]; do sleep 0.02; done`, p.pidfile)
		cmd = exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, cmd.Args...)...)
	}
	p.startDaemon(ctx, t, cmd)
	p.waitReady(ctx, t)
	return p
}

// nginxConf is the configuration for the peer's current version and health.
// The version is part of the configuration, so a new master (which reads the
// configuration afresh) serves the new one, while an old master getting its
// workers back with HUP after WINCH keeps its own (nginx does not re-read the
// configuration then).
func (p *peer) nginxConf() string {
	health := `return 200 "ok\n";`
	if p.fail {
		health = `return 500 "unhealthy\n";`
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // temp paths and logs are root's
	}
	daemon := "on"
	if !p.daemon {
		daemon = "off"
	}
	return fmt.Sprintf(`# written by baton's integration tests
daemon %[10]s;
master_process on;
worker_processes %[1]d;
%[2]s
pid %[3]s/nginx.pid;
lock_file %[3]s/nginx.lock;
error_log %[3]s/log/error.log info;
env %[4]s;
events { worker_connections 512; }
http {
	access_log off;
	client_body_temp_path %[3]s/tmp/body;
	proxy_temp_path %[3]s/tmp/proxy;
	fastcgi_temp_path %[3]s/tmp/fastcgi;
	uwsgi_temp_path %[3]s/tmp/uwsgi;
	scgi_temp_path %[3]s/tmp/scgi;
	keepalive_timeout 30s;
	default_type text/plain;
	server {
		listen %[5]s;
		listen unix:%[6]s;
		location = /health { %[7]s }
		# /slow takes about 3s (2KB at 512 bytes/s): a request in flight
		# on a worker that has to finish it before it may exit.
		location = /slow { limit_rate 512; return 200 "nginx version=%[8]s slow\n%[9]s\n"; }
		location / { return 200 "nginx version=%[8]s\npid=$pid\n"; }
	}
}
`, p.workers, user, p.dir, envOwner, p.addr, p.sock, health, p.version, strings.Repeat("z", 2048), daemon)
}

// unicornApp is the rack app. With preload_app the master loads it once, so
// the version (and FAIL) are those of the release the master started from;
// a HUP after WINCH (rollback) does not reload it.
const unicornApp = `# written by baton's integration tests
VERSION = File.read("VERSION").strip
FAIL = File.exist?("FAIL")
run lambda { |env|
  if env["PATH_INFO"] == "/health"
    FAIL ? [500, {"content-type" => "text/plain"}, ["unhealthy\n"]] : [200, {"content-type" => "text/plain"}, ["ok\n"]]
  elsif env["PATH_INFO"] == "/slow"
    sleep 3
    [200, {"content-type" => "text/plain"}, ["unicorn version=#{VERSION} slow\n"]]
  else
    [200, {"content-type" => "text/plain"}, ["unicorn version=#{VERSION}\npid=#{$$}\n"]]
  end
}
`

// startUnicorn starts Debian's unicorn from a copy of its script at
// bin/unicorn (unicorn re-executes $0 on USR2), daemonized with -D: its
// launcher exits only once the master is ready (unicorn's ready pipe), and
// daemonized is how init scripts run it. working_directory names the
// `current` symlink, as unicorn's docs advise for symlinked releases.
func startUnicorn(t *testing.T, opts peerOptions) *peer {
	t.Helper()
	requirePeer(t, unicornPath, "/usr/bin/ruby")
	p := newPeer(t, flavorUnicorn, opts)
	p.bin = p.installBin(t, unicornPath, "unicorn")
	logPath := filepath.Join(p.dir, "log", "unicorn.log")
	p.logs = append(p.logs, logPath)
	conf := fmt.Sprintf(`# written by baton's integration tests
worker_processes %d
working_directory %q
listen %q, :backlog => 1024
listen %q, :backlog => 1024
pid %q
stderr_path %q
stdout_path %q
preload_app true
timeout 30
`, p.workers, p.current, p.addr, p.sock, p.pidfile, logPath, logPath)
	writeFile(t, filepath.Join(p.dir, "unicorn.rb"), conf, 0o644)
	ctx := testContext(t)
	cmd := exec.Command(p.bin, "-D", "-E", "production", "-c", filepath.Join(p.dir, "unicorn.rb"))
	p.startDaemon(ctx, t, cmd)
	p.waitReady(ctx, t)
	return p
}

// gunicornApp is the WSGI app; with --preload the master imports it once.
const gunicornApp = `# written by baton's integration tests
import os
VERSION = open("VERSION").read().strip()
FAIL = os.path.exists("FAIL")

def app(environ, start_response):
    if environ.get("PATH_INFO") == "/health":
        status, body = ("500 Internal Server Error", b"unhealthy\n") if FAIL else ("200 OK", b"ok\n")
    elif environ.get("PATH_INFO") == "/slow":
        import time
        time.sleep(3)
        status, body = "200 OK", ("gunicorn version=%s slow\n" % VERSION).encode()
    else:
        status, body = "200 OK", ("gunicorn version=%s\npid=%d\n" % (VERSION, os.getpid())).encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

// startGunicorn starts Debian's gunicorn from a copy of its script at
// bin/gunicorn, daemonized with -D (gunicorn ignores WINCH otherwise), from
// the `current` symlink with PWD naming it, so that a re-executed master
// changes into the symlink (gunicorn's util.getcwd prefers $PWD). On USR2
// gunicorn 20.1's new master writes <pidfile>.2 and renames it to <pidfile>
// once the old master is gone.
func startGunicorn(t *testing.T, opts peerOptions) *peer {
	t.Helper()
	requirePeer(t, gunicornPath, "/usr/bin/python3")
	p := newPeer(t, flavorGunicorn, opts)
	p.bin = p.installBin(t, gunicornPath, "gunicorn")
	logPath := filepath.Join(p.dir, "log", "gunicorn.log")
	p.logs = append(p.logs, logPath)
	ctx := testContext(t)
	cmd := exec.Command(p.bin, "-D", "--pid", p.pidfile, "-w", strconv.Itoa(p.workers),
		"-b", p.addr, "-b", "unix:"+p.sock, "--preload", "--graceful-timeout", "10",
		"--error-logfile", logPath, "--log-level", "info", "app:app")
	p.startDaemon(ctx, t, cmd)
	p.waitReady(ctx, t)
	return p
}

// startBaton starts `baton run` (from a copy at bin/baton) running the demo
// app (a copy of the baton binary at bin/app, `app demo-app`) with two
// workers, readiness by sd_notify, --dir current and --envfile
// current/app.env, so a new release or a changed DEMO_VERSION is what the
// next generation serves. The master runs in the foreground, as under
// systemd; it is the test's child.
func startBaton(t *testing.T, opts peerOptions) *peer {
	t.Helper()
	p := newPeer(t, flavorBaton, opts)
	p.bin = p.installBin(t, batonBin, "baton")
	app := p.installBin(t, batonBin, "app")
	ctx := testContext(t)
	args := []string{"run", "--pidfile", p.pidfile,
		"--listen", p.addr, "--listen", "unix:" + p.sock,
		"--workers", strconv.Itoa(p.workers), "--ready", "notify",
		"--dir", p.current, "--envfile", filepath.Join(p.current, "app.env"),
		"--stop-timeout", "10s"}
	args = append(args, opts.BatonArgs...)
	args = append(args, "--", app, "demo-app")
	cmd := exec.Command(p.bin, args...)
	p.prepare(t, cmd)
	waited, err := startManaged(cmd)
	if err != nil {
		t.Fatalf("start baton run: %v", err)
	}
	p.owner.adopt(cmd.Process.Pid)
	ready := make(chan struct{})
	defer close(ready)
	go func() {
		select {
		case err := <-waited:
			select {
			case <-ready:
			default:
				t.Logf("baton run exited before it was ready: %v", err)
			}
		case <-ready:
		}
	}()
	p.waitReady(ctx, t)
	return p
}

// replaceBinary puts a different build at the path the master re-executes
// and returns a check that tells whether a master (by pid) runs it. An ELF
// (nginx, baton) gets bytes appended, which it runs unchanged with, and the
// check compares /proc/PID/exe's inode with the new file's; for baton the
// app binary the workers run is replaced too and its workers are checked the
// same way. A script (unicorn's and gunicorn's) gets a first statement that
// writes the pid of the process running it to a marker file, which the check
// reads: only a master exec'd from the new build writes it.
func (p *peer) replaceBinary(t testing.TB) (runsNew func(pid int) error) {
	t.Helper()
	build := time.Now().UnixNano()
	switch p.flavor {
	case flavorUnicorn, flavorGunicorn:
		mark := filepath.Join(p.dir, fmt.Sprintf("build-%d.pid", build))
		stmt := fmt.Sprintf("File.write(%q, Process.pid.to_s)\n", mark)
		if p.flavor == flavorGunicorn {
			stmt = fmt.Sprintf("import os; open(%q, 'w').write(str(os.getpid()))\n", mark)
		}
		data, err := os.ReadFile(p.bin)
		if err != nil {
			t.Fatal(err)
		}
		shebang, rest, _ := strings.Cut(string(data), "\n")
		writeFile(t, p.bin, shebang+"\n"+stmt+rest, 0o755)
		return func(pid int) error {
			got, err := readPid(mark)
			if err != nil {
				return fmt.Errorf("no process ran the new build: %w", err)
			}
			if got != pid {
				return fmt.Errorf("the new build ran as pid %d, not %d", got, pid)
			}
			return nil
		}
	}
	masterIno := appendTrailer(t, p.bin, build)
	appIno := uint64(0)
	if p.flavor == flavorBaton {
		appIno = appendTrailer(t, filepath.Join(p.dir, "bin", "app"), build)
	}
	return func(pid int) error {
		ino, err := exeInode(pid)
		if err != nil {
			return err
		}
		if ino != masterIno {
			return fmt.Errorf("pid %d runs inode %d, the new build is inode %d", pid, ino, masterIno)
		}
		if appIno == 0 {
			appIno = masterIno // nginx's workers are forks of the master
		}
		ws := p.workersOf(pid)
		if len(ws) == 0 {
			return fmt.Errorf("master %d has no workers", pid)
		}
		for _, w := range ws {
			if ino, err := exeInode(w.pid); err != nil || ino != appIno {
				return fmt.Errorf("worker %d runs inode %d (%v), the new app is inode %d", w.pid, ino, err, appIno)
			}
		}
		return nil
	}
}

// appendTrailer replaces the file at path by a copy with bytes appended and
// returns the new inode.
func appendTrailer(t testing.TB, path string, build int64) uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data)+fmt.Sprintf("\n# baton integration test build %d\n", build), 0o755)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return inodeOf(fi)
}

// breakBinary replaces the binary the master re-executes: "missing" removes
// it, "noexec" makes it not executable, "exits" makes it a script that exits
// at once with status 1.
func (p *peer) breakBinary(t testing.TB, how string) {
	t.Helper()
	switch how {
	case "missing":
		if err := os.Remove(p.bin); err != nil {
			t.Fatal(err)
		}
	case "noexec":
		// A new file without the x bits, renamed over: never a chmod in
		// place, whatever the file is linked to.
		if err := copyFile(p.bin, p.bin, 0o644); err != nil {
			t.Fatal(err)
		}
	case "exits":
		writeFile(t, p.bin, "#!/bin/sh\necho 'broken build' >&2\nexit 1\n", 0o755)
	default:
		t.Fatalf("breakBinary %q", how)
	}
}

// breakConfig makes the next master fail at start-up the way each server
// does with a broken configuration or app.
func (p *peer) breakConfig(t testing.TB) {
	t.Helper()
	switch p.flavor {
	case flavorNginx:
		conf := strings.Replace(p.nginxConf(), "events {", "this_is_not_a_directive on;\nevents {", 1)
		writeFile(t, filepath.Join(p.dir, "nginx.conf"), conf, 0o644)
	case flavorUnicorn:
		writeFile(t, filepath.Join(p.current, "config.ru"), "raise 'broken release'\n", 0o644)
	case flavorGunicorn:
		writeFile(t, filepath.Join(p.current, "app.py"), "raise RuntimeError('broken release')\n", 0o644)
	case flavorBaton:
		// The app command is baton's demo app; a missing one is a broken
		// release: every worker fails to start.
		if err := os.Remove(filepath.Join(p.dir, "bin", "app")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPeersInstalled checks that every real peer the suites drive is
// installed (here and in upgrade/master's tests: puma, plackup with
// Starlet): each one missing skips with the reason, or fails with
// BATON_REQUIRE_PEERS=1, so CI cannot pass with a peer silently absent.
func TestPeersInstalled(t *testing.T) {
	for _, p := range []string{nginxPath, unicornPath, "/usr/bin/ruby", gunicornPath, "/usr/bin/python3",
		"/usr/bin/puma", "/usr/bin/plackup", "/usr/share/perl5/Starlet.pm"} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			requirePeer(t, p)
			if fi, err := os.Stat(p); err == nil && !strings.HasSuffix(p, ".pm") && fi.Mode()&0o111 == 0 {
				t.Errorf("%s is not executable (%v)", p, fi.Mode())
			}
		})
	}
}
