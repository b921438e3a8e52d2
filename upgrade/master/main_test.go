//go:build linux

package master_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/master"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// The test binary doubles as the processes the tests drive, selected by its
// first argument (os/exec's TestMain pattern). The master helper re-execs
// itself on USR2 with the same arguments, so the new master is the helper
// again.
var helpers = map[string]func() int{
	"helper-master": helperMaster, // master.Run with options from envOpts
	"helper-worker": helperWorker, // an HTTP app on LISTEN_FDS that says who it is
}

// envOpts carries the master helper's options as JSON; it survives the
// re-exec because it is part of the environment baton was started with.
const envOpts = "MASTERTEST_OPTS"

// helpersUsed records which helpers the tests started, so that TestMain can
// fail on a helper nobody uses.
var helpersUsed sync.Map

// pgroups are the process groups of every master started, checked at the end.
var pgroups sync.Map

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		if h, ok := helpers[os.Args[1]]; ok {
			os.Exit(h())
		}
	}
	code := m.Run()
	if code == 0 && !testing.Short() && os.Getenv("MASTERTEST_PARTIAL") == "" && flagRunAll() {
		for name := range helpers {
			if _, ok := helpersUsed.Load(name); !ok {
				fmt.Fprintf(os.Stderr, "helper %s is used by no test\n", name)
				code = 1
			}
		}
	}
	// No process a test started may outlive it.
	pgroups.Range(func(k, _ any) bool {
		if pids := groupMembers(k.(int)); len(pids) > 0 {
			fmt.Fprintf(os.Stderr, "processes of group %d still alive: %v\n", k, pids)
			syscall.Kill(-k.(int), syscall.SIGKILL)
			code = 1
		}
		return true
	})
	os.Exit(code)
}

// flagRunAll reports whether the whole package runs (no -run filter).
func flagRunAll() bool {
	for _, a := range os.Args {
		if strings.HasPrefix(a, "-test.run") {
			return false
		}
	}
	return true
}

// groupMembers lists live, non-zombie processes in process group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		g, err := unix.Getpgid(pid)
		if err != nil || g != pgid {
			continue
		}
		if st, err := procs.Info(pid); err == nil && !st.Zombie() {
			out = append(out, pid)
		}
	}
	return out
}

// testOpts is what a test asks of the master helper.
type testOpts struct {
	PIDFile     string
	Listen      []string
	SocketMode  os.FileMode
	DeferAccept time.Duration
	Workers     int
	Dir         string
	EnvFile     string
	EnvDrop     []string
	Ready       string
	StopTimeout time.Duration
	LogFile     string
	LogFormat   string
	WorkerLog   string
	Config      string
	Command     []string
	BackoffMax  time.Duration
	User, Group string
	StopSignal  string
	BootNice    int
}

// envTestPID names the test process; a master helper that outlives it (a
// test binary killed by -timeout runs no cleanup) kills its process group.
const envTestPID = "MASTERTEST_PID"

// dieWithTest kills the helper's process group once the test process is gone.
func dieWithTest() {
	pid, err := strconv.Atoi(os.Getenv(envTestPID))
	if err != nil {
		return
	}
	p, err := procs.Open(pid)
	if err != nil {
		syscall.Kill(0, syscall.SIGKILL)
		return
	}
	go func() {
		if p.Wait(context.Background()) == nil {
			syscall.Kill(0, syscall.SIGKILL)
		}
	}()
}

func helperMaster() int {
	dieWithTest()
	var o testOpts
	if err := json.Unmarshal([]byte(os.Getenv(envOpts)), &o); err != nil {
		fmt.Fprintln(os.Stderr, "helper-master:", err)
		return 2
	}
	opts := master.Options{
		PIDFile: o.PIDFile, Listen: o.Listen, SocketMode: o.SocketMode, DeferAccept: o.DeferAccept, Workers: o.Workers, Dir: o.Dir,
		EnvFile: o.EnvFile, EnvDrop: o.EnvDrop, Ready: o.Ready, StopTimeout: o.StopTimeout,
		LogFile: o.LogFile, LogFormat: o.LogFormat, WorkerLogFile: o.WorkerLog, Config: o.Config, Command: o.Command, BackoffMax: o.BackoffMax, User: o.User, Group: o.Group, StopSignal: o.StopSignal,
		BootNice:   o.BootNice,
		BackoffMin: 20 * time.Millisecond,
	}
	if o.LogFile == "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := master.Run(context.Background(), opts); err != nil {
		fmt.Fprintln(os.Stderr, "helper-master:", err)
		return 1
	}
	return 0
}

// Worker behaviour, set through the environment (the envfile).
const (
	envWorkerVersion = "WORKER_VERSION" // reported in every answer
	envWorkerMode    = "WORKER_MODE"    // "crash": exit at once; "unready": never send READY=1; "stubborn": ignore TERM
)

// helperWorker serves "gen=G worker=W pid=P version=V" on every socket it
// inherits; /env answers its environment, /cwd its working directory, /usr1
// how many SIGUSR1 it got. It refuses sockets whose LISTEN_PID is not its pid.
func helperWorker() int {
	switch os.Getenv(envWorkerMode) {
	case "crash":
		fmt.Fprintln(os.Stderr, "helper-worker: crashing as asked")
		return 3
	}
	env := os.Environ() // before activation unsets LISTEN_*
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		fmt.Fprintf(os.Stderr, "helper-worker: LISTEN_PID=%q is not my pid %d\n", os.Getenv("LISTEN_PID"), os.Getpid())
		return 4
	}
	lns, err := activation.Listeners()
	if err != nil || len(lns) == 0 {
		fmt.Fprintln(os.Stderr, "helper-worker: no listeners:", err)
		return 5
	}
	var usr1 atomic.Int64
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGINT)
	tag := fmt.Sprintf("gen=%s worker=%s pid=%d version=%s", os.Getenv("BATON_GENERATION"), os.Getenv("BATON_WORKER"),
		os.Getpid(), os.Getenv(envWorkerVersion))
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, tag) })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(env) })
	mux.HandleFunc("/cwd", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Readlink("/proc/self/cwd")
		fmt.Fprintln(w, cwd)
	})
	// /slow answers in two parts 300ms apart, its length announced: a
	// client that reads it whole knows the worker finished it.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(slowBody)))
		io.WriteString(w, slowBody[:5])
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, slowBody[5:])
	})
	mux.HandleFunc("/usr1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "worker=%s usr1=%d\n", os.Getenv("BATON_WORKER"), usr1.Load())
	})
	// Count connections: the drain below waits for them itself, because
	// http.Server.Shutdown drops a request it reads after shutdown began
	// (net/http server.go: readRequest, then "if c.server.shuttingDown()
	// { return }"), which a client on a fresh connection sees as EOF.
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	srv := &http.Server{Handler: mux, ConnState: func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if st == http.StateClosed || st == http.StateHijacked {
			delete(conns, c)
		} else {
			conns[c] = true
		}
	}}
	for _, l := range lns {
		go srv.Serve(l)
	}
	if os.Getenv(envWorkerMode) != "unready" {
		if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			fmt.Fprintln(os.Stderr, "helper-worker: notify:", err)
		}
	}
	for s := range sigs {
		if s == syscall.SIGUSR1 {
			usr1.Add(1)
			continue
		}
		if s == syscall.SIGTERM && os.Getenv(envWorkerMode) == "stubborn" {
			fmt.Fprintln(os.Stderr, "helper-worker: ignoring SIGTERM as asked")
			continue
		}
		// Stop accepting; answer what was accepted with Connection: close;
		// close idle keep-alive connections; exit when none is left.
		srv.SetKeepAlivesEnabled(false)
		for _, l := range lns {
			l.Close()
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			srv.SetKeepAlivesEnabled(false) // closes connections that went idle since
			mu.Lock()
			n := len(conns)
			mu.Unlock()
			if n == 0 {
				break
			}
		}
		return 0
	}
	return 0
}

// slowBody is what the helper worker's /slow answers.
const slowBody = "begun, then ended\n"

// harness runs one master helper and what it starts.
type harness struct {
	t        testing.TB
	ctx      context.Context
	dir      string
	bin      string // the program started as master (and workers)
	opts     testOpts
	sd       *fakeSystemd
	log      string // the masters' stderr
	cmd      *exec.Cmd
	pid      int // the first master
	extraEnv []string
	// systemdFiles are passed at fds 3.. through a shell that sets
	// LISTEN_PID to the master's pid, as systemd does.
	systemdFiles []*os.File
}

// newHarness prepares a master helper; start runs it. bin "" means the test
// binary itself.
func newHarness(t testing.TB, opts testOpts, bin string) *harness {
	t.Helper()
	var deadline time.Time
	ok := false
	if d, has := t.(interface{ Deadline() (time.Time, bool) }); has {
		deadline, ok = d.Deadline()
	}
	if !ok {
		deadline = time.Now().Add(2 * time.Minute)
	}
	// Leave a fifth of the test's time for cleanup and reporting, and never
	// let one harness wait longer than any healthy run needs.
	deadline = deadline.Add(-time.Until(deadline) / 5)
	if limit := time.Now().Add(45 * time.Second); deadline.After(limit) {
		deadline = limit
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	dir := t.TempDir()
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	if opts.PIDFile == "" {
		opts.PIDFile = filepath.Join(dir, "app.pid")
	}
	if len(opts.Listen) == 0 {
		opts.Listen = []string{"127.0.0.1:0"}
	}
	if opts.Ready == "" {
		opts.Ready = "notify"
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 5 * time.Second
	}
	if opts.Command == nil {
		helpersUsed.Store("helper-worker", true)
		opts.Command = []string{bin, "helper-worker"}
	}
	return &harness{t: t, ctx: ctx, dir: dir, bin: bin, opts: opts, sd: newFakeSystemd(t, dir), log: filepath.Join(dir, "master.log")}
}

// start starts the master and waits until its first generation is ready.
func (h *harness) start() {
	h.t.Helper()
	h.startNoWait()
	h.waitReady(h.pid)
}

// startNoWait starts the master and waits for its status file.
func (h *harness) startNoWait() {
	h.t.Helper()
	helpersUsed.Store("helper-master", true)
	data, _ := json.Marshal(h.opts)
	logf, err := os.OpenFile(h.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(h.ctx, h.bin, "helper-master")
	if len(h.systemdFiles) > 0 {
		cmd = exec.CommandContext(h.ctx, "/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, h.bin, "helper-master")
		cmd.ExtraFiles = h.systemdFiles
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), envOpts+"="+string(data), "NOTIFY_SOCKET="+h.sd.path, "MASTERTEST_SECRET=master-only",
		envTestPID+"="+strconv.Itoa(os.Getpid()))
	cmd.Env = append(cmd.Env, h.extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = h.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.cmd, h.pid = cmd, cmd.Process.Pid
	pgroups.Store(h.pid, true)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	h.t.Cleanup(func() {
		syscall.Kill(-h.pid, syscall.SIGKILL)
		<-exited
		if h.t.Failed() || os.Getenv("MASTERTEST_SHOWLOG") != "" {
			data, _ := os.ReadFile(h.log)
			h.t.Logf("master log:\n%s", data)
		}
	})
	h.waitStatus(h.pid, "a status file", func(statusfile.Master) bool { return true })
}

// statusOf reads the status file of master pid.
func (h *harness) statusOf(pid int) (statusfile.Master, error) {
	return statusfile.Read(statusfile.Path(h.opts.PIDFile, pid))
}

// waitStatus polls the status file of pid until ok accepts it.
func (h *harness) waitStatus(pid int, what string, ok func(statusfile.Master) bool) statusfile.Master {
	h.t.Helper()
	var last statusfile.Master
	var lastErr error
	for {
		s, err := h.statusOf(pid)
		if err == nil && ok(s) {
			return s
		}
		last, lastErr = s, err
		select {
		case <-h.ctx.Done():
			h.t.Fatalf("master %d: waiting for %s: last status %+v, err %v", pid, what, last, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitReady waits for master pid to report a ready generation.
func (h *harness) waitReady(pid int) statusfile.Master {
	h.t.Helper()
	return h.waitStatus(pid, "ready", func(s statusfile.Master) bool { return s.Ready })
}

// waitGone waits until pid has exited (or is a zombie).
func (h *harness) waitGone(pid int) {
	h.t.Helper()
	for {
		st, err := procs.Info(pid)
		if err != nil || st.Zombie() {
			return
		}
		select {
		case <-h.ctx.Done():
			h.t.Fatalf("process %d still alive", pid)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitFor polls cond.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	for !cond() {
		select {
		case <-h.ctx.Done():
			h.t.Fatalf("waiting for %s: timed out", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *harness) signal(pid int, sig syscall.Signal) {
	h.t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		h.t.Fatalf("signal %v to %d: %v", sig, pid, err)
	}
}

// pidInFile reads a pid file, 0 when it is missing.
func pidInFile(t testing.TB, path string) int {
	t.Helper()
	pid, err := pidfile.Read(path)
	if errors.Is(err, pidfile.ErrMissing) || errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return pid
}

// target is the URL (or unix: target) of the master's first listener.
func target(s statusfile.Master) string {
	l := s.Listeners[0]
	if l.Network == "unix" {
		return "unix:" + l.Addr
	}
	return "http://" + l.Addr + "/"
}

// get fetches path from the first listener of s.
func (h *harness) get(s statusfile.Master, path string) string {
	h.t.Helper()
	l := s.Listeners[0]
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			if l.Network == "unix" {
				return d.DialContext(ctx, "unix", l.Addr)
			}
			return d.DialContext(ctx, "tcp", l.Addr)
		}}}
	resp, err := client.Get("http://baton" + path)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		h.t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(body)
}

// workerPIDs lists the pids of a status's workers in a state.
func workerPIDs(s statusfile.Master, state string) []int {
	var out []int
	for _, w := range s.Workers {
		if w.State == state {
			out = append(out, w.PID)
		}
	}
	return out
}

// listenerInodes lists the inodes of the listening sockets pid holds, as /proc shows them.
func listenerInodes(t testing.TB, pid int) []uint64 {
	t.Helper()
	ls, err := procs.Listeners(pid)
	if err != nil {
		t.Fatalf("listeners of %d: %v", pid, err)
	}
	var out []uint64
	for _, l := range ls {
		out = append(out, l.Inode)
	}
	return out
}

// children lists the live children of pid.
func children(t testing.TB, pid int) []int {
	t.Helper()
	cs, err := procs.Children(pid)
	if err != nil {
		t.Fatalf("children of %d: %v", pid, err)
	}
	var out []int
	for _, c := range cs {
		out = append(out, c.PID)
	}
	slices.Sort(out)
	return out
}
