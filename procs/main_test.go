//go:build linux

package procs

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the helper processes the tests inspect: with
// envHelper set, TestMain runs the named helper instead of the tests (as
// os/exec's tests do). A helper signals readiness by closing its stdout after
// printing what the test needs, and exits when its stdin reaches EOF, so a
// helper whose test died does not outlive it.
const envHelper = "BATON_PROCS_TEST_HELPER"

type helper struct {
	run    func(args []string) error
	spawns []string // helpers it starts itself
}

var helpers = map[string]helper{
	// sleep blocks until stdin is closed.
	"sleep": {run: helperSleep},
	// exit exits at once.
	"exit": {run: func([]string) error { return nil }},
	// parent N starts N sleep helpers and prints their pids.
	"parent": {run: helperParent, spawns: []string{"sleep"}},
	// churn keeps starting sleep helpers and ending and reaping them at
	// random, from 4 goroutines (so from several threads), each with up to
	// 3 alive, until stdin reaches EOF.
	"churn": {run: helperChurn, spawns: []string{"sleep"}},
	// spawner starts a sleep helper for each line it reads, until stdin
	// reaches EOF.
	"spawner": {run: helperSpawner, spawns: []string{"sleep"}},
	// zombie starts an exit helper, waits until it has exited without
	// reaping it and prints its pid.
	"zombie": {run: helperZombie, spawns: []string{"exit"}},
	// listen SOCKPATH listens on 127.0.0.1:0, [::1]:0, unix SOCKPATH and an
	// abstract unix name, prints "NETWORK ADDR INODE" for each, passes the
	// 127.0.0.1 listener to a sleep helper as fd 3 and prints "child PID".
	"listen": {run: helperListen, spawns: []string{"sleep"}},
	// probe PID, run as an unprivileged user, prints what it may see of
	// PID: "exe= cwd= uid= args=N listeners=ERR signal=ERR environ=ERR fd=ERR"
	// (ERR: whether the error is a permission error).
	"probe": {run: helperProbe},
}

var (
	helpersUsed sync.Map // name -> true

	startedMu sync.Mutex
	started   []Identity // every helper process the tests started, for the leak check
)

func TestMain(m *testing.M) {
	if name := os.Getenv(envHelper); name != "" {
		os.Unsetenv(envHelper)
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "procs test: unknown helper %q\n", name)
			os.Exit(2)
		}
		if err := h.run(os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "procs test: helper %s: %v\n", name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	flag.Parse()
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		for name := range helpers {
			if _, ok := helpersUsed.Load(name); !ok {
				fmt.Fprintf(os.Stderr, "procs test: helper %q is not used by any test\n", name)
				code = 1
			}
		}
	}
	if leaked := leakedHelpers(); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "procs test: helper processes still alive: %v\n", leaked)
		code = 1
	}
	os.Exit(code)
}

// leakedHelpers returns the helpers still running, giving each killed one a
// few seconds to finish exiting.
func leakedHelpers() []Identity {
	startedMu.Lock()
	defer startedMu.Unlock()
	var leaked []Identity
	for _, id := range started {
		p, err := OpenIdentity(id)
		if err != nil {
			continue // gone (or its pid reused): not ours any more
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if p.Wait(ctx) != nil {
			leaked = append(leaked, id)
		}
		cancel()
		p.Close()
	}
	return leaked
}

func markUsed(name string) {
	helpersUsed.Store(name, true)
	for _, s := range helpers[name].spawns {
		markUsed(s)
	}
}

// recordStarted notes pid for the leak check at exit.
func recordStarted(t testing.TB, pid int) Identity {
	t.Helper()
	st, err := readStat(pid)
	if err != nil {
		t.Fatalf("stat of helper %d: %v", pid, err)
	}
	startedMu.Lock()
	started = append(started, st.Identity())
	startedMu.Unlock()
	return st.Identity()
}

// testContext is bounded by the test's deadline less 15%, so a hung helper is
// killed while there is still time to report it.
func testContext(t testing.TB) context.Context {
	ctx := t.Context()
	if tt, ok := t.(*testing.T); ok {
		if dl, ok := tt.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Until(dl)*15/100))
			t.Cleanup(cancel)
		}
	}
	return ctx
}

type helperProc struct {
	cmd   *exec.Cmd
	id    Identity
	lines []string       // what it printed before closing stdout
	stdin io.WriteCloser // its standard input, closed at cleanup
}

type helperOpts struct {
	path       string // program to run; default the test binary
	dir        string
	extraFiles []*os.File
	uid        *uint32  // run as this user (and group) instead
	env        []string // added to the helper's environment
}

var testExe = func() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}()

// startHelper runs helper name, waits until it is ready and registers a
// cleanup that kills it by pid and reaps it.
func startHelper(t testing.TB, name string, opts helperOpts, args ...string) *helperProc {
	t.Helper()
	if _, ok := helpers[name]; !ok {
		t.Fatalf("no helper %q", name)
	}
	markUsed(name)
	path := opts.path
	if path == "" {
		path = testExe
	}
	cmd := exec.CommandContext(testContext(t), path, args...)
	cmd.Env = append(helperEnv(name), opts.env...)
	cmd.Dir = opts.dir
	cmd.ExtraFiles = opts.extraFiles
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if opts.uid != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: *opts.uid, Gid: *opts.uid}
	}
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", name, err)
	}
	h := &helperProc{cmd: cmd, id: recordStarted(t, cmd.Process.Pid), stdin: stdin}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	out, err := io.ReadAll(stdout) // EOF: the helper is ready (or died)
	if err != nil {
		t.Fatalf("read helper %s: %v", name, err)
	}
	h.lines = strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(out) == 0 {
		h.lines = nil
	}
	return h
}

// pids parses the lines of h as pids and registers them for the leak check.
func (h *helperProc) pids(t *testing.T) []int {
	t.Helper()
	var out []int
	for _, l := range h.lines {
		pid, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("helper printed %q, want a pid", l)
		}
		out = append(out, pid)
	}
	return out
}

// helperEnv is the environment of helper name. Under -race a binary sleeps
// a second at exit to catch late reports (atexit_sleep_ms): not for helpers.
func helperEnv(name string) []string {
	env := append(os.Environ(), envHelper+"="+name)
	if _, ok := os.LookupEnv("GORACE"); !ok {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// ---- helpers ----

func helperSleep([]string) error {
	os.Stdout.Close()
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}

// startSub starts helper name as a child of a helper and waits until it is
// ready; the child exits when the returned writer is closed.
func startSub(name string, extra ...*os.File) (*exec.Cmd, io.WriteCloser, error) {
	cmd := exec.Command(testExe)
	cmd.Env = helperEnv(name)
	cmd.ExtraFiles = extra
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	if _, err := io.Copy(io.Discard, stdout); err != nil {
		return nil, nil, err
	}
	return cmd, stdin, nil
}

func helperParent(args []string) error {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	var stdins []io.WriteCloser
	for range n {
		cmd, stdin, err := startSub("sleep")
		if err != nil {
			return err
		}
		stdins = append(stdins, stdin)
		fmt.Println(cmd.Process.Pid)
		go cmd.Wait() // reap a child the test kills
	}
	os.Stdout.Close()
	io.Copy(io.Discard, os.Stdin)
	for _, s := range stdins {
		s.Close()
	}
	return nil
}

func helperSpawner([]string) error {
	os.Stdout.Close()
	var stdins []io.WriteCloser
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, stdin, err := startSub("sleep")
		if err != nil {
			return err
		}
		stdins = append(stdins, stdin)
		go cmd.Wait()
	}
	for _, s := range stdins {
		s.Close()
	}
	return nil
}

func helperChurn([]string) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(os.Getpid())))
			var live []io.WriteCloser
			var cmds []*exec.Cmd
			for {
				select {
				case <-done:
					for i, in := range live {
						in.Close()
						cmds[i].Wait()
					}
					return
				default:
				}
				if len(live) < 3 {
					cmd, stdin, err := startSub("sleep")
					if err != nil {
						return
					}
					live, cmds = append(live, stdin), append(cmds, cmd)
					continue
				}
				// End one at random after a pause of up to 5ms: lifetimes
				// vary, so children that stay sit behind ones that leave.
				time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
				i := rng.IntN(len(live))
				live[i].Close()
				cmds[i].Wait()
				live, cmds = slices.Delete(live, i, i+1), slices.Delete(cmds, i, i+1)
			}
		})
	}
	os.Stdout.Close()
	io.Copy(io.Discard, os.Stdin)
	close(done)
	wg.Wait()
	return nil
}

func helperZombie([]string) error {
	cmd := exec.Command(testExe)
	cmd.Env = helperEnv("exit")
	if err := cmd.Start(); err != nil {
		return err
	}
	// Wait for the exit but leave the child unreaped (WNOWAIT): a zombie.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return err
			}
			break
		}
	}
	fmt.Println(cmd.Process.Pid)
	os.Stdout.Close()
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}

func helperListen(args []string) error {
	sockPath := args[0]
	var inherit *os.File
	w := bufio.NewWriter(os.Stdout)
	for _, l := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
		{"unix", sockPath},
		{"unix", "@baton-procs-test-" + strconv.Itoa(os.Getpid())},
	} {
		ln, err := net.Listen(l.network, l.addr)
		if err != nil {
			return err
		}
		defer ln.Close()
		f, err := ln.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return err
		}
		fmt.Fprintln(w, l.network, ln.Addr(), st.Ino)
		if l.network == "tcp4" {
			inherit = f // passed on below, then closed
			// An established connection is a socket but not a listener.
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			defer c.Close()
		} else {
			f.Close()
		}
	}
	cmd, stdin, err := startSub("sleep", inherit)
	if err != nil {
		return err
	}
	inherit.Close()
	go cmd.Wait()
	fmt.Fprintln(w, "child", cmd.Process.Pid)
	if err := w.Flush(); err != nil {
		return err
	}
	os.Stdout.Close()
	io.Copy(io.Discard, os.Stdin)
	return stdin.Close()
}

func helperProbe(args []string) error {
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	st, err := Info(pid)
	if err != nil {
		return err
	}
	_, lerr := Listeners(pid)
	p, err := Open(pid)
	if err != nil {
		return err
	}
	defer p.Close()
	serr := p.Signal(0)
	_, eerr := Environ(st.Identity())
	_, ferr := FDTarget(st.Identity(), 0)
	fmt.Printf("exe=%q cwd=%q uid=%d args=%d listeners=%v signal=%v environ=%v fd=%v\n",
		st.Exe, st.Cwd, st.UID, len(st.Cmdline), errors.Is(lerr, fs.ErrPermission), errors.Is(serr, fs.ErrPermission),
		errors.Is(eerr, fs.ErrPermission), errors.Is(ferr, fs.ErrPermission))
	return nil
}
