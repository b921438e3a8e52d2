package integration

import (
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
)

// flavor is the kind of master a peer runs; the names are baton's --flavor
// values.
type flavor string

const (
	flavorNginx    flavor = "nginx"
	flavorUnicorn  flavor = "unicorn"
	flavorGunicorn flavor = "gunicorn"
	flavorBaton    flavor = "baton"
)

// allFlavors is the order the shared scenario tables run in.
var allFlavors = []flavor{flavorNginx, flavorUnicorn, flavorGunicorn, flavorBaton}

// peerOptions configures startPeer. The zero value starts version "v1" with
// two workers.
type peerOptions struct {
	// Version is what the first generation serves; "" means "v1".
	Version string
	// Workers is the number of workers per generation; zero means 2.
	Workers int
	// BatonArgs are extra `baton run` flags, before "--" (baton only).
	BatonArgs []string
	// DaemonOff runs nginx in the foreground ("daemon off"), started by a
	// shell that exits once its pid file is written, as a supervisor that
	// is not its parent would (nginx only).
	DaemonOff bool
}

// peer is one running server under test, with everything in its own
// directory (short, under /tmp, because unix socket paths are limited to 107
// bytes):
//
//	bin/            the executables the master runs and re-executes (copies)
//	releases/V/     one release of the app: VERSION, FAIL, config.ru, app.py, app.env
//	current         symlink to the release the next generation loads
//	FLAVOR.pid      the master's pid file (and .oldbin, and gunicorn's .2)
//	FLAVOR.sock     the unix socket listener
//	log/            the server's logs, printed when the test fails
//
// The methods are safe for concurrent use except where they change files.
type peer struct {
	flavor  flavor
	dir     string
	bin     string // the executable the master re-executes on USR2
	pidfile string
	addr    string // 127.0.0.1:PORT
	sock    string // unix socket path
	current string // the release symlink
	workers int
	daemon  bool   // nginx: "daemon on"
	version string // the version the next generation will serve
	fail    bool   // the next generation answers /health with 500
	logs    []string
	// installed maps each file installBin put in bin/ to its source.
	installed map[string]string
	owner     *owner
}

// startPeer starts a peer of flavor f, ready and serving its first version.
// A missing peer program skips the test (fails it with BATON_REQUIRE_PEERS=1).
func startPeer(t *testing.T, f flavor, opts peerOptions) *peer {
	t.Helper()
	switch f {
	case flavorNginx:
		return startNginx(t, opts)
	case flavorUnicorn:
		return startUnicorn(t, opts)
	case flavorGunicorn:
		return startGunicorn(t, opts)
	case flavorBaton:
		return startBaton(t, opts)
	}
	t.Fatalf("unknown flavor %q", f)
	return nil
}

// requirePeer skips (or, with BATON_REQUIRE_PEERS=1, fails) the test when a
// program a peer needs is not installed.
func requirePeer(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv(EnvRequirePeers) == "1" {
				t.Fatalf("peer %s is missing and %s=1: %v", p, EnvRequirePeers, err)
			}
			t.Skipf("peer %s is not installed (apt-get install nginx-light unicorn gunicorn puma starlet; README); set %s=1 to fail instead", p, EnvRequirePeers)
		}
	}
}

// newPeer lays out the peer's directory with release v1 as current.
func newPeer(t *testing.T, f flavor, opts peerOptions) *peer {
	t.Helper()
	o := ownerOf(t) // first, so its cleanup (kill everything) runs last
	dir, err := os.MkdirTemp("", "bt-"+string(f)+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &peer{
		flavor:  f,
		dir:     dir,
		pidfile: filepath.Join(dir, string(f)+".pid"),
		addr:    "127.0.0.1:" + strconv.Itoa(freePort(t)),
		sock:    filepath.Join(dir, string(f)+".sock"),
		current: filepath.Join(dir, "current"),
		workers: opts.Workers,
		daemon:  !opts.DaemonOff,
		version: opts.Version,
		owner:   o,
	}
	if p.workers == 0 {
		p.workers = 2
	}
	if p.version == "" {
		p.version = "v1"
	}
	for _, d := range []string{"bin", "log", "releases"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.release(t, p.version)
	// Adopt whatever the pid files name before the kill, so a test that
	// fails half way still kills masters it never read.
	t.Cleanup(func() {
		for _, f := range p.pidfiles() {
			if pid, err := readPid(f); err == nil {
				o.adopt(pid)
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			p.dumpLogs(t)
		}
	})
	return p
}

// pidfiles lists the pid files the flavor's masters may write.
func (p *peer) pidfiles() []string {
	return []string{p.pidfile, p.pidfile + ".oldbin", p.pidfile + ".2"}
}

// freePort returns a loopback TCP port that was free a moment ago (the
// servers here cannot take a listener from the test; the race is tiny).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// installBin puts a copy of src at bin/name and returns its path. Always a
// copy, never a hard link: tests replace and chmod these files, which must
// never reach the system's binaries or the shared baton build.
func (p *peer) installBin(t testing.TB, src, name string) string {
	t.Helper()
	dst := filepath.Join(p.dir, "bin", name)
	if err := copyFile(src, dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if p.installed == nil {
		p.installed = map[string]string{}
	}
	p.installed[dst] = src
	return dst
}

// repair undoes whatever a test broke for the next generation: every binary
// installed again from its source, and a new good release (for nginx, a good
// configuration) serving v.
func (p *peer) repair(t testing.TB, v string) {
	t.Helper()
	for dst, src := range p.installed {
		if err := copyFile(src, dst, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.fail = false
	p.release(t, v)
}

// copyFile writes a copy of src at dst with mode, atomically (a new inode
// renamed over dst, never dst rewritten in place: a running program may be
// executing it, or it may be a hard link to a shared file).
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFileAtomic(dst, mode, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// writeFileAtomic writes a new file beside path and renames it over path.
//
// It holds syscall.ForkLock for reading while the file is open for writing:
// a process the test forks meanwhile (from another goroutine) would inherit
// the descriptor until it execs, and exec(2) of the file fails with
// ETXTBSY ("text file busy") while any process holds it open for writing
// (golang/go#22315). os/exec forks with ForkLock held for writing.
func writeFileAtomic(path string, mode os.FileMode, write func(io.Writer) error) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	err := writeFileAtomic(path, mode, func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// release deploys version v for the next generation: it creates
// releases/V holding the app (unless it exists: a revert) and points current
// at it atomically, as deploy tools do; for nginx it rewrites the
// configuration, which holds the version. With deleteOld the release current
// pointed to before is removed, as a deploy tool cleaning old releases does.
func (p *peer) release(t testing.TB, v string, deleteOld ...bool) {
	t.Helper()
	old, _ := os.Readlink(p.current)
	rel := filepath.Join(p.dir, "releases", v)
	p.version = v
	if _, err := os.Stat(rel); err != nil {
		if err := os.MkdirAll(rel, 0o755); err != nil {
			t.Fatal(err)
		}
		p.fail = false
		p.writeApp(t, rel)
	} else if p.flavor == flavorNginx {
		p.fail = false
		p.writeApp(t, rel)
	}
	tmp := p.current + ".new"
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.current); err != nil {
		t.Fatal(err)
	}
	if len(deleteOld) > 0 && deleteOld[0] && old != "" && old != rel {
		if err := os.RemoveAll(old); err != nil {
			t.Fatal(err)
		}
	}
}

// setFail makes the next generation answer /health with 500 (or not).
func (p *peer) setFail(t testing.TB, fail bool) {
	t.Helper()
	p.fail = fail
	p.writeApp(t, p.current)
}

// writeApp writes the app files the next generation loads into dir.
func (p *peer) writeApp(t testing.TB, dir string) {
	t.Helper()
	switch p.flavor {
	case flavorNginx:
		writeFile(t, filepath.Join(p.dir, "nginx.conf"), p.nginxConf(), 0o644)
	case flavorUnicorn:
		writeFile(t, filepath.Join(dir, "config.ru"), unicornApp, 0o644)
	case flavorGunicorn:
		writeFile(t, filepath.Join(dir, "app.py"), gunicornApp, 0o644)
	case flavorBaton:
		env := "DEMO_VERSION=" + p.version + "\n"
		if p.fail {
			env += "DEMO_FAIL=1\n"
		}
		writeFile(t, filepath.Join(dir, "app.env"), env, 0o644)
	}
	if p.flavor == flavorUnicorn || p.flavor == flavorGunicorn {
		writeFile(t, filepath.Join(dir, "VERSION"), p.version+"\n", 0o644)
		if p.fail {
			writeFile(t, filepath.Join(dir, "FAIL"), "1\n", 0o644)
		} else {
			os.Remove(filepath.Join(dir, "FAIL"))
		}
	}
}

// startDaemon runs a command that daemonizes and returns when its
// foreground process exits, which must be with status 0.
func (p *peer) startDaemon(ctx context.Context, t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	p.prepare(t, cmd)
	waited, err := startManaged(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	p.owner.adopt(cmd.Process.Pid)
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("%s %s: %v", cmd.Path, strings.Join(cmd.Args[1:], " "), err)
		}
	case <-ctx.Done():
		t.Fatalf("%s did not daemonize: %v", cmd.Path, ctx.Err())
	}
}

// prepare gives cmd the test's marker, its own session, the peer's
// log for stdout and stderr, and the release directory as its working
// directory (PWD names the symlink, as a shell's cd does).
func (p *peer) prepare(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	logPath := filepath.Join(p.dir, "log", filepath.Base(cmd.Path)+".out")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	p.logs = append(p.logs, logPath)
	cmd.Stdout, cmd.Stderr = f, f // files, not pipes: a daemon keeps them open
	if cmd.Dir == "" {
		cmd.Dir = p.current
	}
	cmd.Env = append(os.Environ(), p.owner.marker, "PWD="+cmd.Dir)
	// Its own session, as a service manager starts a service: what it
	// leaves behind is recognisably not a child this process waits for.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}

// waitReady waits until the pid file names a live master and requests are
// answered by the expected version.
func (p *peer) waitReady(ctx context.Context, t testing.TB) int {
	t.Helper()
	var pid int
	mustWait(ctx, t, 30*time.Second, fmt.Sprintf("%s pid file %s", p.flavor, p.pidfile), func() (bool, error) {
		var err error
		pid, err = readPid(p.pidfile)
		return err == nil && alive(pid), err
	})
	p.owner.adopt(pid)
	p.wantServing(ctx, t, p.version)
	mustWait(ctx, t, 30*time.Second, fmt.Sprintf("%d workers of %s master %d", p.workers, p.flavor, pid), func() (bool, error) {
		n := len(p.workersOf(pid))
		return n == p.workers, fmt.Errorf("%d workers", n)
	})
	return pid
}

// masterPID reads the pid file and adopts the master it names.
func (p *peer) masterPID(t testing.TB) int {
	t.Helper()
	pid, err := readPid(p.pidfile)
	if err != nil {
		t.Fatalf("%s master: %v", p.flavor, err)
	}
	p.owner.adopt(pid)
	return pid
}

// workersOf lists the live workers of master: its children that are not a
// master named by one of the pid files (a new master is the old one's child).
func (p *peer) workersOf(master int) []proc {
	masters := map[int]bool{}
	for _, f := range p.pidfiles() {
		if pid, err := readPid(f); err == nil {
			masters[pid] = true
		}
	}
	var out []proc
	for _, c := range children(master) {
		if masters[c.pid] || strings.Contains(c.cmdline, "master") {
			continue
		}
		out = append(out, c)
	}
	return out
}

// url is the TCP URL of path.
func (p *peer) url(path string) string { return "http://" + p.addr + path }

// unixTarget is the load generator's target for path over the unix socket.
func (p *peer) unixTarget(path string) string { return "unix:" + p.sock + ":" + path }

// check is the health check spec for `baton upgrade --check`.
func (p *peer) check() string { return p.url("/health") }

// get makes one request on a new TCP connection.
func (p *peer) get(ctx context.Context, path string) (int, string, error) {
	return httpGet(ctx, "tcp", p.addr, path)
}

// getUnix makes one request on a new unix socket connection.
func (p *peer) getUnix(ctx context.Context, path string) (int, string, error) {
	return httpGet(ctx, "unix", p.sock, path)
}

func httpGet(ctx context.Context, network, addr, path string) (int, string, error) {
	return httpGetTimeout(ctx, network, addr, path, 5*time.Second)
}

func httpGetTimeout(ctx context.Context, network, addr, path string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://peer"+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// versionOf returns the version a response body names ("" if none): the
// value of the first "version=" field of its first line.
func versionOf(body string) string {
	line, _, _ := strings.Cut(body, "\n")
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "version="); ok {
			return v
		}
	}
	return ""
}

// expectBody checks that a body is one of this flavor's answers.
func (p *peer) expectBody(body string) error {
	prefix := string(p.flavor) + " version="
	if p.flavor == flavorBaton {
		prefix = "version="
	}
	if !strings.HasPrefix(body, prefix) || versionOf(body) == "" {
		return fmt.Errorf("body %q is not a %s answer", truncate(body, 80), p.flavor)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// sample makes n requests (alternating TCP and the unix socket) and tallies
// the versions that answered; any failure is an error.
func (p *peer) sample(ctx context.Context, n int) (map[string]int, error) {
	seen := map[string]int{}
	for i := range n {
		get := p.get
		if i%2 == 1 {
			get = p.getUnix
		}
		code, body, err := get(ctx, "/")
		if err != nil {
			return seen, err
		}
		if code != http.StatusOK {
			return seen, fmt.Errorf("GET / answered %d: %q", code, truncate(body, 80))
		}
		if err := p.expectBody(body); err != nil {
			return seen, err
		}
		seen[versionOf(body)]++
	}
	return seen, nil
}

// wantServing waits until 20 requests in a row are answered by version v.
func (p *peer) wantServing(ctx context.Context, t testing.TB, v string) {
	t.Helper()
	mustWait(ctx, t, 20*time.Second, fmt.Sprintf("%s to serve only %s", p.flavor, v), func() (bool, error) {
		seen, err := p.sample(ctx, 20)
		if err != nil {
			return false, err
		}
		return len(seen) == 1 && seen[v] == 20, fmt.Errorf("served %v", seen)
	})
}

// slowRequest starts a request to /slow, which takes about 3 seconds, on
// the current generation, and returns a channel that reports whether it
// ended with a 200 from version want. baton's demo app has no slow
// endpoint: for it the channel reports nil at once (and ok is false).
func (p *peer) slowRequest(ctx context.Context, want string) (done <-chan error, ok bool) {
	ch := make(chan error, 1)
	if p.flavor == flavorBaton {
		ch <- nil
		return ch, false
	}
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		code, body, err := httpGetTimeout(ctx, "tcp", p.addr, "/slow", 30*time.Second)
		switch {
		case err != nil:
			ch <- fmt.Errorf("GET /slow: %w", err)
		case code != http.StatusOK || versionOf(body) != want:
			ch <- fmt.Errorf("GET /slow: %d %q, want 200 from %s", code, truncate(body, 60), want)
		default:
			ch <- nil
		}
	}()
	return ch, true
}

// wantHealthy checks /health answers 200 now.
func (p *peer) wantHealthy(ctx context.Context, t testing.TB) {
	t.Helper()
	code, body, err := p.get(ctx, "/health")
	if err != nil || code != http.StatusOK {
		t.Errorf("%s /health: %d %q %v", p.flavor, code, truncate(body, 80), err)
	}
}

// wantSocket checks that the unix socket file exists and accepts.
func (p *peer) wantSocket(ctx context.Context, t testing.TB) {
	t.Helper()
	fi, err := os.Stat(p.sock)
	if err != nil {
		t.Errorf("unix socket file: %v", err)
		return
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Errorf("%s is %v, not a socket", p.sock, fi.Mode())
	}
	if code, body, err := p.getUnix(ctx, "/"); err != nil || code != http.StatusOK {
		t.Errorf("GET / over %s: %d %q %v", p.sock, code, truncate(body, 80), err)
	}
}

// wantPidfiles checks that the pid files end consistent: the pid file names
// master, which runs with its workers, and no .oldbin or .2 is left.
func (p *peer) wantPidfiles(t testing.TB, master int) {
	t.Helper()
	pid, err := readPid(p.pidfile)
	switch {
	case err != nil:
		t.Errorf("pid file: %v", err)
	case pid != master:
		t.Errorf("pid file names %d, want %d", pid, master)
	case !alive(pid):
		t.Errorf("pid file names %d, which is not running", pid)
	}
	for _, f := range p.pidfiles()[1:] {
		if data, err := os.ReadFile(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%q, %v)", filepath.Base(f), data, err)
		}
	}
}

// dumpLogs prints the tail of every log of the peer.
func (p *peer) dumpLogs(t testing.TB) {
	t.Helper()
	logs := append([]string(nil), p.logs...)
	more, _ := filepath.Glob(filepath.Join(p.dir, "log", "*"))
	for _, m := range more {
		if !slices.Contains(logs, m) {
			logs = append(logs, m)
		}
	}
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		t.Logf("--- %s:\n%s", l, logExcerpt(string(data)))
	}
}

// logExcerpt is the last 4000 bytes of a log, and, when the log holds a Go
// program's crash (a goroutine dump, which the tail alone shows only the
// end of), the lines that say why it crashed and which goroutine did:
// "SIGQUIT: quit", "panic: ...", "fatal error: ..." and what follows them.
func logExcerpt(s string) string {
	const tail, head = 4000, 1500
	if len(s) <= tail {
		return s
	}
	out := "..." + s[len(s)-tail:]
	i := -1
	for _, mark := range []string{"\npanic: ", "\nfatal error: ", "\nSIGQUIT: ", "\nSIGSEGV: ", "\nSIGABRT: ", "\nunexpected signal"} {
		if j := strings.Index(s, mark); j >= 0 && (i < 0 || j < i) {
			i = j
		}
	}
	if i >= 0 && i < len(s)-tail {
		out = s[i+1:min(i+1+head, len(s)-tail)] + "\n[...]\n" + out
	}
	return out
}
