package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/upgrade/load"
)

// This file is the fleet the Ansible tests (fleet_test.go) roll out to: hosts
// on this machine, each in a network namespace of its own (its own loopback,
// so every host serves the same port), each running sshd and a baton master
// on its loopback, and a load generator inside its namespace.

// fleetPort is the port every host's master serves on its own loopback.
const fleetPort = 8080

// fleetTools are the programs the fleet tests need, from Debian's packages
// (ansible-core, openssh-server, openssh-client, util-linux, iproute2).
var fleetTools = []string{
	"/usr/bin/ansible-playbook", "/usr/bin/ansible-galaxy", "/usr/bin/ansible-doc", "/usr/bin/ansible",
	"/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/nsenter", "/usr/sbin/ip",
}

// fleetHost is one host of the fleet:
//
//	bin/baton   the master's binary (a release replaces it)
//	bin/app     the demo app its workers run
//	app/app.env the app's configuration (DEMO_VERSION, DEMO_FAIL)
//	baton.pid   the master's pid file
//	log/        the master's and sshd's output
type fleetHost struct {
	name    string
	netns   string // the namespace's name under /run/netns
	dir     string
	pidfile string
	load    *fleetLoad
}

// nsPath is the namespace's bind mount, for nsenter --net= and setns(2).
func (h *fleetHost) nsPath() string { return "/run/netns/" + h.netns }

// addNetns creates a network namespace with its loopback up; the test
// removes it at its end.
func addNetns(t *testing.T, name string) {
	t.Helper()
	run := func(args ...string) {
		if out, err := exec.Command("/usr/sbin/ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("/usr/sbin/ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	run("-n", name, "link", "set", "lo", "up")
}

// nsDial connects to addr from inside the namespace at nsPath: the socket is
// made on a thread that joined the namespace, which then ends with its
// goroutine (never unlocked, so no other goroutine runs in the namespace).
func nsDial(nsPath, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		ch <- result{c: c, err: err}
	}()
	r := <-ch
	return r.c, r.err
}

// get makes one request to the host's master from inside its namespace.
func (h *fleetHost) get(path string) (int, string, error) {
	c, err := nsDial(h.nsPath(), fmt.Sprintf("127.0.0.1:%d", fleetPort))
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, h.name); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// serving is the version the host answers GET / with, "" and an error if
// it does not answer 200.
func (h *fleetHost) serving() (string, error) {
	code, body, err := h.get("/")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("%s: GET / answered %d: %q", h.name, code, truncate(body, 80))
	}
	return versionOf(body), nil
}

// startSshd runs sshd -D in the host's namespace on its loopback, port 22,
// with the test's own configuration and keys (never /etc/ssh).
//
// Its sessions get the owner's marker (so whatever outlives a session is
// still the test's to kill) and SHLVL=1: Debian's bash reads ~/.bashrc for a
// command run by sshd only at shell level 1, and root's ~/.bashrc on the
// development machines runs `pyenv init`, seconds per Ansible task on a
// loaded machine. A real host's root shell is no part of what is tested.
func (h *fleetHost) startSshd(ctx context.Context, t *testing.T, o *owner, keys string) {
	t.Helper()
	conf := filepath.Join(h.dir, "sshd_config")
	writeFile(t, conf, fmt.Sprintf(`# written by baton's fleet test
ListenAddress 127.0.0.1
Port 22
HostKey %[1]s/host_ed25519
AuthorizedKeysFile %[1]s/authorized_keys
PidFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
Subsystem sftp internal-sftp
MaxStartups 100
MaxSessions 100
LogLevel ERROR
SetEnv SHLVL=1 %[2]s
`, keys, o.marker), 0o644)
	h.startIn(t, o, "sshd", "/usr/sbin/sshd", "-D", "-e", "-f", conf)
	mustWait(ctx, t, 20*time.Second, h.name+" sshd on 127.0.0.1:22", func() (bool, error) {
		c, err := nsDial(h.nsPath(), "127.0.0.1:22")
		if err == nil {
			c.Close()
		}
		return err == nil, err
	})
}

// startIn starts a program inside the host's namespace (nsenter execs it, so
// the pid is the program's), owned by the test, its output in log/NAME.out.
func (h *fleetHost) startIn(t *testing.T, o *owner, logName string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(h.dir, "log", logName+".out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd := exec.Command("/usr/bin/nsenter", append([]string{"--net=" + h.nsPath(), "--"}, args...)...)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), o.marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if _, err := startManaged(cmd); err != nil {
		t.Fatalf("%s: start %s: %v", h.name, args[0], err)
	}
	o.adopt(cmd.Process.Pid)
	return cmd
}

// startMaster lays out the host's directory with version v and starts its
// baton master (2 workers of the demo app) in the namespace; it returns once
// the master answers /health.
func (h *fleetHost) startMaster(ctx context.Context, t *testing.T, o *owner, v string) {
	t.Helper()
	for _, d := range []string{"bin", "app", "log"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(h.dir, "bin", "baton")
	app := filepath.Join(h.dir, "bin", "app")
	for _, dst := range []string{bin, app} {
		if err := copyFile(batonBin, dst, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(h.dir, "app", "app.env"), "DEMO_VERSION="+v+"\n", 0o644)
	h.startIn(t, o, "baton", bin, "run", "--pidfile", h.pidfile,
		"--listen", fmt.Sprintf("127.0.0.1:%d", fleetPort), "--workers", "2", "--ready", "notify",
		"--dir", filepath.Join(h.dir, "app"), "--envfile", filepath.Join(h.dir, "app", "app.env"),
		"--stop-timeout", "10s", "--", app, "demo-app")
	t.Cleanup(func() {
		for _, f := range []string{h.pidfile, h.pidfile + ".oldbin"} {
			if pid, err := readPid(f); err == nil {
				o.adopt(pid)
			}
		}
	})
	mustWait(ctx, t, 30*time.Second, h.name+" master serving "+v, func() (bool, error) {
		got, err := h.serving()
		return err == nil && got == v, err
	})
}

// master is the pid the host's pid file names (0 if none).
func (h *fleetHost) master() int {
	pid, _ := readPid(h.pidfile)
	return pid
}

// fleetLoad is the load generator of one host: the fleet-load helper running
// inside the host's namespace, reporting its counts as JSON lines.
type fleetLoad struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	waited <-chan error
	mu     sync.Mutex
	last   fleetCounts
	eof    chan struct{} // closed once the helper's output is read to its end
}

// fleetCounts is one report of the fleet-load helper.
type fleetCounts struct {
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Races    int            `json:"races"`
	Versions map[string]int `json:"versions"`
	Failures map[string]int `json:"failures,omitempty"`
	Samples  []string       `json:"samples,omitempty"`
	Final    bool           `json:"final,omitempty"`
}

// startLoad starts the host's load generator: one keep-alive and one
// new-connection client on 127.0.0.1:8080 inside the namespace, every
// answer checked (200 and a demo app body).
func (h *fleetHost) startLoad(t *testing.T, o *owner) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/nsenter", "--net="+h.nsPath(), "--", exe, fmt.Sprintf("127.0.0.1:%d", fleetPort))
	cmd.Env = append(os.Environ(), o.marker, envHelper+"=fleet-load")
	cmd.Stderr = os.Stderr
	l := &fleetLoad{cmd: cmd, eof: make(chan struct{})}
	if l.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, started := outputPipe(t, &cmd.Stdout)
	if l.waited, err = startManaged(cmd); err != nil {
		t.Fatalf("%s: start load: %v", h.name, err)
	}
	started()
	o.adopt(cmd.Process.Pid)
	go func() {
		defer close(l.eof)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var c fleetCounts
			if json.Unmarshal(sc.Bytes(), &c) != nil {
				continue
			}
			l.mu.Lock()
			l.last = c
			l.mu.Unlock()
		}
	}()
	h.load = l
}

// counts is the load's latest report.
func (l *fleetLoad) counts() fleetCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// stop ends the load and returns its final counts: the helper's output
// read to its end (its final report), then its exit.
func (l *fleetLoad) stop(t testing.TB) fleetCounts {
	t.Helper()
	l.stdin.Close()
	select {
	case <-l.eof:
	case <-time.After(30 * time.Second):
		l.cmd.Process.Kill()
		t.Errorf("load generator did not stop")
	}
	if err := <-l.waited; err != nil {
		t.Errorf("load generator: %v", err)
	}
	return l.counts()
}

// fleetLoadPause is each client's pause between requests: six hosts under
// load on two cores beside Ansible.
const fleetLoadPause = 100 * time.Millisecond

// helperFleetLoad is the fleet-load helper: load on the address in args[0]
// (from the namespace it was started in) until stdin closes, a JSON line of
// counts every 200ms and a final one.
func helperFleetLoad(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "fleet-load: want one argument, HOST:PORT")
		return 2
	}
	expect := func(status int, body []byte) error {
		if status != http.StatusOK || !strings.HasPrefix(string(body), "version=") {
			return fmt.Errorf("status %d, body %q", status, truncate(string(body), 60))
		}
		return nil
	}
	var runs []*load.Run
	for _, mode := range []load.Mode{load.KeepAlive, load.NewConn} {
		r, err := load.Start(context.Background(), load.Options{Target: "http://" + args[0] + "/", Mode: mode,
			Concurrency: 1, Pause: fleetLoadPause, Timeout: 10 * time.Second, Expect: expect})
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleet-load:", err)
			return 1
		}
		runs = append(runs, r)
	}
	report := func(results []load.Result, final bool) {
		c := fleetCounts{Versions: map[string]int{}, Failures: map[string]int{}, Final: final}
		for _, r := range results {
			c.OK += r.OK
			c.Failed += r.Failed
			c.Races += r.Races
			for v, n := range versions(r) {
				c.Versions[v] += n
			}
			for k, n := range r.Failures {
				c.Failures[k] += n
			}
			c.Samples = append(c.Samples, r.Samples...)
		}
		data, _ := json.Marshal(c)
		os.Stdout.Write(append(data, '\n'))
	}
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			var snap []load.Result
			for _, r := range runs {
				snap = append(snap, r.Snapshot())
			}
			report(snap, false)
		case <-eof:
			var final []load.Result
			for _, r := range runs {
				final = append(final, r.Stop())
			}
			report(final, true)
			return 0
		}
	}
}

// helperFleetProxy is ssh's ProxyCommand for a fleet host: started by
// nsenter inside the host's namespace, it connects to args[0] there (the
// host's sshd on its loopback) and copies stdin to the connection and the
// connection to stdout, as `nc` would.
func helperFleetProxy(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "fleet-proxy: want one argument, HOST:PORT")
		return 2
	}
	c, err := net.DialTimeout("tcp", args[0], 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet-proxy:", err)
		return 1
	}
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(os.Stdout, c)
	return 0
}
