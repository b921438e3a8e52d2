package pidfile

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv names the helper a re-executed test binary runs instead of the
// tests (os/exec's TestMain pattern).
const helperEnv = "PIDFILE_TEST_HELPER"

// helpers run in a child process started by startHelper. Each signals
// readiness by closing stdout (anything written before is a failure report)
// and then waits for SIGTERM or SIGQUIT, or to be killed.
var helpers = map[string]func(args []string) error{
	// hold PATH: Create PATH with our pid and hold its lock.
	"hold": func(args []string) error {
		_, err := Create(args[0], os.Getpid(), Options{})
		return err
	},
	// hold-oldbin PATH: Create PATH, then rename it to PATH.oldbin, as a
	// master does on USR2; the lock must travel with it.
	"hold-oldbin": func(args []string) error {
		f, err := Create(args[0], os.Getpid(), Options{})
		if err != nil {
			return err
		}
		return f.RenameOldbin()
	},
	// live: just a live process.
	"live": func([]string) error { return nil },
}

var (
	helpersMu   sync.Mutex
	helpersUsed = map[string]bool{}
	started     []startedProc
)

type startedProc struct {
	pid   int
	start time.Time
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name, os.Args[1:]))
	}
	flag.Parse()
	code := m.Run()
	if code == 0 {
		code = checkHelpers()
	}
	os.Exit(code)
}

func runHelper(name string, args []string) int {
	h, ok := helpers[name]
	if !ok {
		fmt.Printf("unknown helper %q\n", name)
		return 2
	}
	// Notify before announcing readiness, so a SIGTERM/SIGQUIT from the
	// test always finds the handler installed.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGQUIT)
	if err := h(args); err != nil {
		fmt.Printf("helper %s: %v\n", name, err)
		return 1
	}
	os.Stdout.Close()
	<-sig
	return 0
}

// checkHelpers fails the run when a helper process outlived the tests, or
// when a full run left a helper unused (dead code hides broken tests).
func checkHelpers() int {
	code := 0
	for _, p := range started {
		if st, err := procStart(p.pid); err == nil && st.Equal(p.start) {
			fmt.Printf("helper process %d is still alive\n", p.pid)
			code = 1
		}
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" && !testing.Short() {
		for name := range helpers {
			if !helpersUsed[name] {
				fmt.Printf("helper %q is not used by any test\n", name)
				code = 1
			}
		}
	}
	return code
}

// helper is a running helper process.
type helper struct {
	cmd *exec.Cmd
	pid int
}

// startHelper starts the named helper and returns once it is ready. The
// process is killed (with its group) when the test ends.
func startHelper(t *testing.T, name string, args ...string) *helper {
	t.Helper()
	if _, ok := helpers[name]; !ok {
		t.Fatalf("no helper %q", name)
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Until(d)/10))
		t.Cleanup(cancel)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	st, _ := procStart(pid)
	helpersMu.Lock()
	helpersUsed[name] = true
	started = append(started, startedProc{pid: pid, start: st})
	helpersMu.Unlock()
	h := &helper{cmd: cmd, pid: pid}
	t.Cleanup(func() { h.kill(t) })
	msg, err := io.ReadAll(out) // EOF: the helper closed stdout, or died
	if err != nil || len(msg) > 0 {
		h.kill(t)
		t.Fatalf("helper %s: not ready: %q %v", name, msg, err)
	}
	return h
}

// kill kills the helper's process group with SIGKILL and reaps it. A second
// call is a no-op.
func (h *helper) kill(t *testing.T) {
	t.Helper()
	if h.cmd.ProcessState != nil {
		return
	}
	if err := syscall.Kill(-h.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill helper %d: %v", h.pid, err)
	}
	h.cmd.Wait() // killed: the error is the signal
}
