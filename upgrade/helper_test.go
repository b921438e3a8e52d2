package upgrade

// The fake master: the test binary re-executed as an nginx-like master
// (TestMain dispatches on helperEnv). It inherits its listener like nginx
// (fd 3, NGINX in its environment), writes its pid file, on USR2 renames it
// to .oldbin and re-execs itself with the listener in ExtraFiles, honours
// WINCH, HUP, QUIT and TERM, restores its pid file and respawns its workers
// when the new master dies, and its workers serve their version and pid.
// The new master's behaviour comes from <dir>/next.env, read at USR2:
// FAKE_MODE=never-ready|die|ignore-quit|fail-health|other-listener.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
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
	"syscall"
	"testing"
	"time"
)

const helperEnv = "BATON_UPGRADE_TEST_HELPER"

var helpers = map[string]func(){
	"master":      fakeMaster,
	"worker":      fakeWorker,
	"orchestrate": orchestrate,
}

var (
	usedMu  sync.Mutex
	used    = map[string]bool{}
	groups  []int // process groups of the helpers started, checked at exit
	testBin string
)

func markUsed(name string, pgid int) {
	usedMu.Lock()
	defer usedMu.Unlock()
	used[name] = true
	if pgid > 0 {
		groups = append(groups, pgid)
	}
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		h()
		os.Exit(0)
	}
	var err error
	if testBin, err = os.Executable(); err != nil {
		panic(err)
	}
	code := m.Run()
	usedMu.Lock()
	defer usedMu.Unlock()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		for name := range helpers {
			if !used[name] {
				fmt.Fprintf(os.Stderr, "helper %q is used by no test\n", name)
				code = 1
			}
		}
	}
	for _, pg := range groups {
		if pids := liveInGroup(pg); len(pids) > 0 {
			fmt.Fprintf(os.Stderr, "helper process group %d is still alive: %v\n", pg, pids)
			_ = syscall.Kill(-pg, syscall.SIGKILL)
			code = 1
		}
	}
	os.Exit(code)
}

// liveInGroup lists the processes of group pg that are not zombies (a
// zombie reparented to a lax init lingers and holds nothing).
func liveInGroup(pg int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func helperLog(dir, format string, args ...any) {
	if d := os.Getenv("FAKE_LOGDIR"); d != "" {
		f, err := os.OpenFile(filepath.Join(d, "all.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s %d: "+format+"\n", append([]any{time.Now().Format("15:04:05.000"), os.Getpid()}, args...)...)
			f.Close()
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "signals."+strconv.Itoa(os.Getpid())+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, format+"\n", args...)
	f.Close()
}

func writeFileAtomic(path, data string) {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		panic(err)
	}
}

// readEnvFile reads KEY=VALUE lines.
func readEnvFile(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.Contains(l, "=") {
			env = append(env, l)
		}
	}
	return env
}

func namesPid(path string, pid int) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid)
}

func fakeMaster() {
	pidfile := os.Getenv("FAKE_PIDFILE")
	dir := filepath.Dir(pidfile)
	modes := os.Getenv("FAKE_MODE")
	is := func(m string) bool { return slices.Contains(strings.Split(modes, ","), m) }
	nworkers, _ := strconv.Atoi(os.Getenv("FAKE_WORKERS"))
	self, _ := os.Executable()
	// Handlers first: Go drops a USR2 that arrives before Notify, and the
	// pid file tells the world this master takes signals.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGTTIN, syscall.SIGTTOU)
	helperLog(dir, "start mode=%q", modes)
	if is("die") {
		os.Exit(3)
	}
	if is("retitle") && !strings.HasPrefix(os.Args[0], "nginx: ") {
		// Like unicorn between its exec and setting its title: a command
		// line that says nothing, then the same process (pid and start
		// time) with its title.
		time.Sleep(100 * time.Millisecond)
		self, _ := os.Executable()
		err := syscall.Exec(self, []string{"nginx: master process " + os.Getenv("FAKE_BIN")}, os.Environ())
		panic(err)
	}
	var ln net.Listener
	var err error
	if os.Getenv("NGINX") != "" && !is("other-listener") {
		f := os.NewFile(3, "listener")
		ln, err = net.FileListener(f)
		f.Close()
	} else {
		if os.Getenv("NGINX") != "" {
			syscall.Close(3) // drop the inherited listener
		}
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		panic(err)
	}
	os.Unsetenv("NGINX")
	// Not TCPListener.File: exec calls Fd on ExtraFiles, and Fd on a File
	// from the net package puts the descriptor in blocking mode — the open
	// file description every worker shares — so a worker's accept(2) can
	// block in the kernel where Close cannot interrupt it. A dup wrapped by
	// os.NewFile stays non-blocking through Fd.
	lnFile := nonblockingFile(ln.(*net.TCPListener))
	if os.Getenv("FAKE_INHERITED") == "" {
		writeFileAtomic(filepath.Join(dir, "addr"), ln.Addr().String())
	}

	type exit struct {
		cmd *exec.Cmd
	}
	exits := make(chan exit, 16)
	workers := map[*exec.Cmd]bool{}
	startWorker := func() {
		cmd := exec.Command(self)
		cmd.Args = []string{"nginx: worker process"}
		cmd.Env = append(os.Environ(), helperEnv+"=worker", "FAKE_MASTER="+strconv.Itoa(os.Getpid()))
		cmd.ExtraFiles = []*os.File{lnFile}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		workers[cmd] = true
		go func() { cmd.Wait(); exits <- exit{cmd} }()
	}
	want := nworkers
	if is("never-ready") {
		want = 0
	}
	for range want {
		startWorker()
	}
	writeFileAtomic(pidfile, strconv.Itoa(os.Getpid())+"\n")
	os.Stdout.Close() // ready

	var child *exec.Cmd
	quitting := false
	signalWorkers := func(sig syscall.Signal) {
		for w := range workers {
			_ = w.Process.Signal(sig)
		}
	}
	for {
		select {
		case s := <-sigs:
			sig := s.(syscall.Signal)
			helperLog(dir, "signal %s", SignalName(sig))
			switch sig {
			case syscall.SIGUSR2:
				if child != nil || !namesPid(pidfile, os.Getpid()) {
					helperLog(dir, "USR2 ignored")
					continue
				}
				if err := os.Rename(pidfile, pidfile+".oldbin"); err != nil {
					continue
				}
				// Like nginx: exec argv[0] as it is on disk now.
				bin := strings.TrimPrefix(os.Args[0], "nginx: master process ")
				cmd := exec.Command(bin)
				cmd.Args = []string{"nginx: master process " + bin}
				if slices.Contains(readEnvFile(filepath.Join(dir, "next.env")), "FAKE_MODE=retitle") {
					cmd.Args = []string{bin, "-starting"}
				}
				cmd.Env = append(os.Environ(), "NGINX=3;", "FAKE_INHERITED=1", "FAKE_BIN="+bin)
				cmd.Env = append(cmd.Env, readEnvFile(filepath.Join(dir, "next.env"))...)
				cmd.ExtraFiles = []*os.File{lnFile}
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					os.Rename(pidfile+".oldbin", pidfile)
					continue
				}
				child = cmd
				go func() { cmd.Wait(); exits <- exit{cmd} }()
			case syscall.SIGWINCH:
				want = 0
				signalWorkers(syscall.SIGQUIT)
			case syscall.SIGHUP:
				want = nworkers
				for len(workers) < want {
					startWorker()
				}
			case syscall.SIGQUIT, syscall.SIGTERM:
				if is("ignore-quit") {
					continue
				}
				quitting = true
				want = 0
				signalWorkers(sig)
			}
		case e := <-exits:
			if e.cmd == child {
				child = nil
				if os.Getenv("FAKE_NO_RESTORE") == "" && namesPid(pidfile+".oldbin", os.Getpid()) {
					os.Rename(pidfile+".oldbin", pidfile)
				}
				if !quitting {
					want = nworkers
				}
			} else {
				delete(workers, e.cmd)
			}
			for !quitting && len(workers) < want {
				startWorker()
			}
		}
		if quitting && len(workers) == 0 {
			for _, p := range []string{pidfile, pidfile + ".oldbin"} {
				if namesPid(p, os.Getpid()) {
					os.Remove(p)
				}
			}
			helperLog(dir, "exit")
			os.Exit(0)
		}
	}
}

// nonblockingFile returns a dup of l's descriptor that exec can pass on
// without making the shared socket blocking.
func nonblockingFile(l *net.TCPListener) *os.File {
	rc, err := l.SyscallConn()
	if err != nil {
		panic(err)
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = syscall.Dup(int(fd)) }); err != nil || derr != nil {
		panic(fmt.Sprint(err, derr))
	}
	syscall.CloseOnExec(nfd)
	return os.NewFile(uintptr(nfd), "listener")
}

func fakeWorker() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGQUIT, syscall.SIGTERM)
	f := os.NewFile(3, "listener")
	ln, err := net.FileListener(f)
	if err != nil {
		panic(err)
	}
	f.Close()
	version, master := os.Getenv("FAKE_VERSION"), os.Getenv("FAKE_MASTER")
	failHealth := slices.Contains(strings.Split(os.Getenv("FAKE_MODE"), ","), "fail-health")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "version=%s master=%s pid=%d\n", version, master, os.Getpid())
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if failHealth {
			http.Error(w, "unhealthy "+version, http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "ok %s\n", version)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	dir := filepath.Dir(os.Getenv("FAKE_PIDFILE"))
	helperLog(dir, "worker of %s serving", master)
	go func() {
		s := <-sigs
		helperLog(dir, "worker got %v", s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	err = srv.Serve(ln)
	helperLog(dir, "worker serve returned %v", err)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		os.Exit(1)
	}
}

// orchestrate runs Start in a separate process, so that a test can kill it
// half-way (a crash of the orchestrator).
func orchestrate() {
	m, err := New(Options{
		Pidfile:      os.Getenv("FAKE_PIDFILE"),
		SpawnTimeout: time.Hour,
		VerifyFor:    time.Hour,
		Progress:     func(s Step) { fmt.Fprintf(os.Stderr, "orchestrator %d: %s\n", os.Getpid(), s) },
	})
	if err != nil {
		os.Exit(2)
	}
	os.Stdout.Close()
	_, err = m.Start(context.Background())
	if err != nil {
		os.Exit(1)
	}
}

// fake is one fake master started by a test.
type fake struct {
	t       *testing.T
	dir     string
	pidfile string
	addr    string
	cmd     *exec.Cmd
}

type fakeOptions struct {
	bin     string // the binary to run, default the test binary
	workers int
	env     []string
	next    []string // the new master's environment overrides
}

// startFake starts a fake master and waits until it has written its pid
// file and closed its stdout.
func startFake(t *testing.T, o fakeOptions) *fake {
	t.Helper()
	markUsed("master", 0)
	markUsed("worker", 0)
	if o.workers == 0 {
		o.workers = 2
	}
	dir := t.TempDir()
	f := &fake{t: t, dir: dir, pidfile: filepath.Join(dir, "app.pid")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bin := testBin
	if o.bin != "" {
		bin = o.bin
	}
	cmd := exec.Command(bin)
	cmd.Args = []string{"nginx: master process " + bin}
	cmd.Env = append(os.Environ(), helperEnv+"=master", "FAKE_PIDFILE="+f.pidfile, "FAKE_WORKERS="+strconv.Itoa(o.workers), "FAKE_VERSION=v1")
	cmd.Env = append(cmd.Env, o.env...)
	// A session of its own: like a daemonized nginx, and one group to kill.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.cmd = cmd
	markUsed("master", cmd.Process.Pid)
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		// SIGKILL takes effect when each process next runs, and the group
		// may hold no child of ours to wait for (the old master exits at a
		// commit): wait until it is gone, killing again what a fork under
		// way may have added, so that TestMain's check sees what the test
		// left, not what is still dying.
		for deadline := time.Now().Add(10 * time.Second); len(liveInGroup(cmd.Process.Pid)) > 0 && time.Now().Before(deadline); {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			time.Sleep(10 * time.Millisecond)
		}
	})
	done := make(chan struct{})
	go func() { buf := make([]byte, 1); out.Read(buf); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("fake master never got ready")
	}
	b, err := os.ReadFile(filepath.Join(dir, "addr"))
	if err != nil {
		t.Fatal(err)
	}
	f.addr = string(b)
	if len(o.next) > 0 {
		f.setNext(o.next...)
	}
	return f
}

// setNext sets the environment of the next new master.
func (f *fake) setNext(env ...string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "next.env"), []byte(strings.Join(env, "\n")+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fake) check() Check {
	c, err := ParseCheck("http://" + f.addr + "/health")
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// get returns the body of GET / (one connection per request).
func (f *fake) get() string {
	f.t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + f.addr + "/")
	if err != nil {
		f.t.Fatalf("GET /: %v", err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	return sb.String()
}

// pid reads a pid file, 0 when missing.
func (f *fake) pid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// signals returns the signal log of the master pid.
func (f *fake) signals(pid int) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "signals."+strconv.Itoa(pid)+".log"))
	return string(b)
}
