//go:build linux

package procs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// commOf is the kernel's comm for a program run as path: its base name cut to
// TASK_COMM_LEN-1 bytes.
func commOf(path string) string {
	b := filepath.Base(path)
	if len(b) > 15 {
		b = b[:15]
	}
	return b
}

func TestInfoHelper(t *testing.T) {
	before := time.Now()
	h := startHelper(t, "sleep", helperOpts{})
	after := time.Now()
	pid := h.cmd.Process.Pid

	st, err := Info(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := filepath.EvalSymlinks(testExe)
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != pid || st.PPID != os.Getpid() {
		t.Errorf("pid, ppid = %d, %d; want %d, %d", st.PID, st.PPID, pid, os.Getpid())
	}
	if st.State != 'S' && st.State != 'R' {
		t.Errorf("state = %q, want S or R", st.State)
	}
	if st.UID != os.Getuid() {
		t.Errorf("uid = %d, want %d", st.UID, os.Getuid())
	}
	if st.Exe != exe || st.ExeDeleted {
		t.Errorf("exe = %q (deleted %v), want %q", st.Exe, st.ExeDeleted, exe)
	}
	if st.Cwd != wd || st.CwdDeleted {
		t.Errorf("cwd = %q (deleted %v), want %q", st.Cwd, st.CwdDeleted, wd)
	}
	if !slices.Equal(st.Cmdline, h.cmd.Args) {
		t.Errorf("cmdline = %q, want %q", st.Cmdline, h.cmd.Args)
	}
	if want := commOf(testExe); st.Comm != want {
		t.Errorf("comm = %q, want %q", st.Comm, want)
	}
	if st.Identity() != h.id || st.Start == 0 {
		t.Errorf("identity = %v, want %v", st.Identity(), h.id)
	}
	if st.Zombie() || st.Role() != RoleUnknown {
		t.Errorf("zombie %v role %v, want false unknown", st.Zombie(), st.Role())
	}
	// The start time is truncated to a tick (10ms); allow a few for the
	// clocks being read at slightly different instants. This checks the
	// arithmetic (boot time plus ticks), not the machine's speed: the bounds
	// are taken around the fork itself.
	const slack = 50 * time.Millisecond
	if st.StartTime.Before(before.Add(-slack)) || st.StartTime.After(after.Add(slack)) {
		t.Errorf("start time %v not within [%v, %v] ± %v", st.StartTime, before, after, slack)
	}
	got, err := StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Sub(st.StartTime).Abs(); d > time.Millisecond {
		t.Errorf("StartTime = %v, Info says %v", got, st.StartTime)
	}
}

func TestInfoSelf(t *testing.T) {
	st, err := Info(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Cmdline, os.Args) {
		t.Errorf("cmdline = %q, want %q", st.Cmdline, os.Args)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.Zombie() {
		t.Errorf("pid %d ppid %d state %q, want %d %d not Z", st.PID, st.PPID, st.State, os.Getpid(), os.Getppid())
	}
}

// A program run through a symlink gets the link's name as comm: here one
// full of the characters that break naive /proc/PID/stat parsers.
func TestInfoCommWithParens(t *testing.T) {
	for _, name := range []string{"a) b (c", "x)\n) S 1 2 (", ") ", "(("} {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			link := filepath.Join(t.TempDir(), name)
			if err := os.Symlink(testExe, link); err != nil {
				t.Fatal(err)
			}
			h := startHelper(t, "sleep", helperOpts{path: link})
			st, err := Info(h.cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if want := commOf(name); st.Comm != want {
				t.Errorf("comm = %q, want %q", st.Comm, want)
			}
			if st.PPID != os.Getpid() || st.Start != h.id.Start {
				t.Errorf("ppid %d start %d, want %d %d", st.PPID, st.Start, os.Getpid(), h.id.Start)
			}
			if st.Cmdline[0] != link {
				t.Errorf("argv[0] = %q, want %q", st.Cmdline[0], link)
			}
		})
	}
}

func TestInfoDeleted(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "copy")
	b, err := os.ReadFile(testExe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cwd := filepath.Join(dir, "cwd")
	if err := os.Mkdir(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, "sleep", helperOpts{path: exe, dir: cwd})
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cwd); err != nil {
		t.Fatal(err)
	}
	st, err := Info(h.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Exe != exe || !st.ExeDeleted {
		t.Errorf("exe = %q deleted %v, want %q deleted", st.Exe, st.ExeDeleted, exe)
	}
	if st.Cwd != cwd || !st.CwdDeleted {
		t.Errorf("cwd = %q deleted %v, want %q deleted", st.Cwd, st.CwdDeleted, cwd)
	}
}

func wantGone(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrGone) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: err = %v, want ErrGone and fs.ErrNotExist", what, err)
	}
}

func TestZombieIsGone(t *testing.T) {
	h := startHelper(t, "zombie", helperOpts{})
	z := h.pids(t)[0]
	st, err := Info(z)
	if err != nil {
		t.Fatalf("Info of a zombie: %v", err)
	}
	if !st.Zombie() || st.PPID != h.cmd.Process.Pid {
		t.Fatalf("state %q ppid %d, want Z %d", st.State, st.PPID, h.cmd.Process.Pid)
	}
	if len(st.Cmdline) != 0 || st.Exe != "" {
		t.Errorf("zombie cmdline %q exe %q, want empty", st.Cmdline, st.Exe)
	}
	_, err = StartTime(z)
	wantGone(t, "StartTime", err)
	_, err = Open(z)
	wantGone(t, "Open", err)
	_, err = OpenIdentity(st.Identity())
	wantGone(t, "OpenIdentity", err)
	_, err = Children(z)
	wantGone(t, "Children", err)
	_, err = Listeners(z)
	wantGone(t, "Listeners", err)
	_, err = Environ(st.Identity())
	wantGone(t, "Environ", err)
	_, err = FDTarget(st.Identity(), 0)
	wantGone(t, "FDTarget", err)
	kids, err := Children(h.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 0 {
		t.Errorf("Children of the zombie's parent = %v, want none", kids)
	}
	// The fallback (no pidfd) sees it gone too.
	p := &Process{id: st.Identity(), pidfd: -1, done: make(chan struct{})}
	if p.Alive() {
		t.Error("fallback Alive of a zombie = true")
	}
}

func TestGonePid(t *testing.T) {
	cmd := exec.Command(testExe)
	cmd.Env = helperEnv("exit")
	markUsed("exit")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid // reaped: gone, unless the pid space wrapped since
	_, err := Info(pid)
	wantGone(t, "Info", err)
	_, err = StartTime(pid)
	wantGone(t, "StartTime", err)
	_, err = Open(pid)
	wantGone(t, "Open", err)
	_, err = Listeners(pid)
	wantGone(t, "Listeners", err)
	_, err = Children(pid)
	wantGone(t, "Children", err)
	_, err = Sockets(pid)
	wantGone(t, "Sockets", err)
	_, err = Environ(Identity{PID: pid})
	wantGone(t, "Environ", err)
	_, err = FDTarget(Identity{PID: pid}, 0)
	wantGone(t, "FDTarget", err)
	for _, bad := range []int{0, -1} {
		if _, err := Info(bad); err == nil {
			t.Errorf("Info(%d) succeeded", bad)
		}
		if _, err := Open(bad); err == nil {
			t.Errorf("Open(%d) succeeded", bad)
		}
	}
}

// newHandle opens id with a pidfd, or without one when fallback is set (as on
// kernels before 5.3).
func newHandle(t *testing.T, id Identity, fallback bool) *Process {
	t.Helper()
	if fallback {
		was := noPidfd.Swap(true) // as after pidfd_open failed with ENOSYS
		defer noPidfd.Store(was)
	}
	p, err := OpenIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	switch {
	case fallback && p.pidfd >= 0:
		t.Fatal("fallback handle holds a pidfd")
	case !fallback && p.pidfd < 0:
		t.Skip("kernel has no pidfds")
	}
	return p
}

var handleModes = []struct {
	name     string
	fallback bool
}{
	{"pidfd", false},
	{"fallback", true},
}

// Signal and Wait on a grandchild: the test is not its parent, so only a
// pidfd (or /proc) can tell when it exits.
func TestSignalWaitGrandchild(t *testing.T) {
	for _, m := range handleModes {
		t.Run(m.name, func(t *testing.T) {
			h := startHelper(t, "parent", helperOpts{}, "1")
			kid := h.pids(t)[0]
			id := recordStarted(t, kid)
			p := newHandle(t, id, m.fallback)
			if p.Identity() != id || p.PID() != kid {
				t.Fatalf("handle is %v, want %v", p.Identity(), id)
			}
			if !p.Alive() {
				t.Fatal("Alive = false for a running process")
			}
			if err := p.Signal(0); err != nil {
				t.Fatalf("Signal(0): %v", err)
			}

			// A done ctx ends the wait while the process runs.
			done, cancel := context.WithCancel(testContext(t))
			cancel()
			if err := p.Wait(done); !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait(canceled ctx) = %v, want context.Canceled", err)
			}
			// So does cancelling a blocked Wait.
			ctx, cancel := context.WithCancel(testContext(t))
			waitErr := make(chan error, 1)
			go func() { waitErr <- p.Wait(ctx) }()
			cancel()
			if err := <-waitErr; !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait then cancel = %v, want context.Canceled", err)
			}

			ctx = testContext(t)
			go func() { waitErr <- p.Wait(ctx) }()
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatalf("Signal(TERM): %v", err)
			}
			if err := <-waitErr; err != nil {
				t.Fatalf("Wait after TERM: %v", err)
			}
			if p.Alive() {
				t.Error("Alive = true after Wait returned")
			}
			err := p.Signal(syscall.SIGTERM)
			var se *SignalError
			if !errors.As(err, &se) || !errors.Is(err, ErrGone) || se.PID != kid || se.Signal != syscall.SIGTERM {
				t.Errorf("Signal after exit = %#v, want *SignalError{%d, TERM} wrapping ErrGone", err, kid)
			}
		})
	}
}

func TestOpenIdentityReused(t *testing.T) {
	h := startHelper(t, "sleep", helperOpts{})
	wrong := Identity{PID: h.id.PID, Start: h.id.Start + 1}
	if _, err := OpenIdentity(wrong); !errors.Is(err, ErrReused) {
		t.Errorf("OpenIdentity(%v) = %v, want ErrReused", wrong, err)
	}
	p, err := OpenIdentity(h.id)
	if err != nil {
		t.Fatalf("OpenIdentity(%v): %v", h.id, err)
	}
	defer p.Close()
	q, err := Open(h.id.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Identity() != h.id {
		t.Errorf("Open(%d) pinned %v, want %v", h.id.PID, q.Identity(), h.id)
	}
	// A handle whose pid now shows another start time: the fallback must
	// refuse to signal it.
	f := &Process{id: wrong, pidfd: -1, done: make(chan struct{})}
	if err := f.Signal(syscall.SIGKILL); !errors.Is(err, ErrReused) || !errors.Is(err, ErrGone) {
		t.Errorf("fallback Signal to a reused pid = %v, want ErrReused and ErrGone", err)
	}
	if !p.Alive() {
		t.Error("the helper died: the fallback signalled a reused pid")
	}
}

func TestSignalAfterExit(t *testing.T) {
	for _, m := range handleModes {
		t.Run(m.name, func(t *testing.T) {
			h := startHelper(t, "sleep", helperOpts{})
			p := newHandle(t, h.id, m.fallback)
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			h.cmd.Wait() // reaped
			if err := p.Signal(0); !errors.Is(err, ErrGone) {
				t.Errorf("Signal after exit = %v, want ErrGone", err)
			}
			if err := p.Wait(testContext(t)); err != nil {
				t.Errorf("Wait after exit = %v", err)
			}
			if p.Alive() {
				t.Error("Alive after exit")
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := p.Signal(0); !errors.Is(err, ErrClosed) {
				t.Errorf("Signal after Close = %v, want ErrClosed", err)
			}
			if err := p.Wait(testContext(t)); !errors.Is(err, ErrClosed) {
				t.Errorf("Wait after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestCloseWakesWait(t *testing.T) {
	for _, m := range handleModes {
		t.Run(m.name, func(t *testing.T) {
			h := startHelper(t, "sleep", helperOpts{})
			p := newHandle(t, h.id, m.fallback)
			waitErr := make(chan error, 1)
			go func() { waitErr <- p.Wait(testContext(t)) }()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-waitErr; !errors.Is(err, ErrClosed) {
				t.Errorf("Wait during Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestChildren(t *testing.T) {
	for _, fromFile := range []bool{true, false} {
		name := "children-files"
		if !fromFile {
			name = "scan"
		}
		t.Run(name, func(t *testing.T) {
			defer func(was bool) { useChildrenFile = was }(useChildrenFile)
			useChildrenFile = fromFile
			testChildren(t)
		})
	}
}

// TestChildrenUnderChurn reads the children of a helper that starts, ends
// and reaps children from several threads all the while, so that the
// children files are read while entries leave the list: every child that
// runs from before a call until after it (seen by scans of all of /proc on
// both sides) must be in its answer.
func TestChildrenUnderChurn(t *testing.T) {
	h := startHelper(t, "churn", helperOpts{})
	pid := h.cmd.Process.Pid
	fastBefore := childrenFast.Load()
	const rounds = 60
	checked := 0
	for i := range rounds {
		before, err := childrenByScan(pid)
		if err != nil {
			t.Fatal(err)
		}
		kids, err := Children(pid)
		if err != nil {
			t.Fatal(err)
		}
		after, err := childrenByScan(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range before {
			if !slices.ContainsFunc(after, func(a Stat) bool { return a.Identity() == b.Identity() }) {
				continue
			}
			checked++
			if !slices.ContainsFunc(kids, func(k Stat) bool { return k.Identity() == b.Identity() }) {
				t.Fatalf("round %d: Children(%d) = %v lacks %v, which ran all along", i, pid, pids(kids), b.Identity())
			}
		}
		for _, k := range kids {
			if k.PPID != pid || k.Zombie() {
				t.Fatalf("round %d: child %+v", i, k)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no child ran through a call: the churn is too fast to test anything")
	}
	// The property holds for the scan too: the children files must have
	// answered most rounds, or this test proves nothing of them.
	if fast := childrenFast.Load() - fastBefore; fast < rounds/2 {
		t.Errorf("the children files answered %d of %d rounds; want most", fast, rounds)
	}
}

// TestConfirmChildren: a listed child that is gone, or is no longer the
// parent's, means the list changed while it was read (and may have skipped
// a child): the read is retried. A zombie is still a child, left out.
func TestConfirmChildren(t *testing.T) {
	h := startHelper(t, "parent", helperOpts{}, "1")
	kid := h.pids(t)[0]
	recordStarted(t, kid)
	z := startHelper(t, "zombie", helperOpts{})
	zombie, err := strconv.Atoi(z.lines[0])
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testExe)
	cmd.Env = helperEnv("exit")
	markUsed("exit")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	reaped := cmd.Process.Pid // gone, unless the pid space wrapped since
	for _, c := range []struct {
		name    string
		parent  int
		listed  []int
		changed bool
		live    int
	}{
		{name: "child", parent: h.cmd.Process.Pid, listed: []int{kid}, live: 1},
		{name: "zombie child", parent: z.cmd.Process.Pid, listed: []int{zombie}, live: 0},
		{name: "reaped", parent: h.cmd.Process.Pid, listed: []int{kid, reaped}, changed: true},
		{name: "another's child", parent: h.cmd.Process.Pid, listed: []int{kid, os.Getpid()}, changed: true},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
			out, changed, err := confirmChildren(c.parent, c.listed)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed || !changed && len(out) != c.live {
				t.Errorf("confirmChildren(%d, %v) = %v, changed %v; want changed %v, %d live", c.parent, c.listed, pids(out), changed, c.changed, c.live)
			}
		})
	}
}

func pids(sts []Stat) []int {
	var out []int
	for _, s := range sts {
		out = append(out, s.PID)
	}
	return out
}

func testChildren(t *testing.T) {
	h := startHelper(t, "parent", helperOpts{}, "2")
	want := h.pids(t)
	for _, pid := range want {
		recordStarted(t, pid)
	}
	kids, err := Children(h.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, k := range kids {
		got = append(got, k.PID)
		if k.PPID != h.cmd.Process.Pid || len(k.Cmdline) == 0 {
			t.Errorf("child %d: ppid %d cmdline %q", k.PID, k.PPID, k.Cmdline)
		}
		// The start time is Info's; UID, Exe and Cwd are left to Info.
		full, err := Info(k.PID)
		if err != nil {
			t.Fatal(err)
		}
		if !k.StartTime.Equal(full.StartTime) && k.StartTime.Sub(full.StartTime).Abs() > time.Millisecond || k.Start != full.Start {
			t.Errorf("child %d: start %d at %v, Info says %d at %v", k.PID, k.Start, k.StartTime, full.Start, full.StartTime)
		}
		if k.Exe != "" || k.Cwd != "" || full.Exe == "" {
			t.Errorf("child %d: Children's exe %q cwd %q, Info's exe %q", k.PID, k.Exe, k.Cwd, full.Exe)
		}
	}
	// Oldest first: the helper started them in the order it printed them.
	if !slices.Equal(got, want) {
		t.Errorf("Children = %v, want %v", got, want)
	}
	for _, r := range []struct {
		role Role
		n    int
	}{{RoleUnknown, 2}, {RoleMaster, 0}, {RoleWorker, 0}} {
		byRole, err := ChildrenByRole(h.cmd.Process.Pid, r.role)
		if err != nil {
			t.Fatal(err)
		}
		if len(byRole) != r.n {
			t.Errorf("ChildrenByRole(%v) = %d processes, want %d", r.role, len(byRole), r.n)
		}
	}
	// The test process's children include the helper.
	mine, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(mine, func(s Stat) bool { return s.Identity() == h.id }) {
		t.Errorf("Children(self) = %v, lacks helper %v", mine, h.id)
	}
}

// TestGroup: a helper started with Setpgid leads a process group that its
// children join; Group lists the live members and leaves a zombie out.
func TestGroup(t *testing.T) {
	h := startHelper(t, "parent", helperOpts{}, "2")
	want := []Identity{h.id}
	for _, pid := range h.pids(t) {
		want = append(want, recordStarted(t, pid))
	}
	slices.SortFunc(want, func(a, b Identity) int { return cmp.Compare(a.PID, b.PID) })
	got, err := Group(h.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Group(%d) = %v, want %v", h.cmd.Process.Pid, got, want)
	}

	z := startHelper(t, "zombie", helperOpts{})
	zombie := z.pids(t)[0]
	if st, err := readStat(zombie); err != nil || !st.Zombie() || st.Group != z.cmd.Process.Pid {
		t.Fatalf("helper's child %d: %+v, %v; want a zombie in group %d", zombie, st, err, z.cmd.Process.Pid)
	}
	got, err = Group(z.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []Identity{z.id}) {
		t.Errorf("Group(%d) = %v, want only the helper %v", z.cmd.Process.Pid, got, z.id)
	}

	if _, err := Group(0); err == nil {
		t.Error("Group(0) succeeded")
	}
}

// What an unprivileged user sees of root's process: the command line and uid,
// but not exe, cwd, environment or descriptors (ptrace access mode, proc(5)),
// and no permission to signal.
func TestUnprivilegedView(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	// The helper binary must be reachable by nobody.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "probe")
	b, err := os.ReadFile(testExe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	nobody := uint32(65534)
	h := startHelper(t, "probe", helperOpts{path: exe, dir: "/", uid: &nobody}, strconv.Itoa(os.Getpid()))
	want := fmt.Sprintf(`exe="" cwd="" uid=0 args=%d listeners=true signal=true environ=true fd=true`, len(os.Args))
	if len(h.lines) != 1 || h.lines[0] != want {
		t.Errorf("probe saw %q, want %q", h.lines, want)
	}
}

// Signal, Alive, Wait and Close from many goroutines at once: run under -race.
func TestConcurrentUse(t *testing.T) {
	for _, m := range handleModes {
		t.Run(m.name, func(t *testing.T) {
			h := startHelper(t, "sleep", helperOpts{})
			p := newHandle(t, h.id, m.fallback)
			ctx := testContext(t)
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for range 4 {
				wg.Go(func() {
					if err := p.Wait(ctx); !errors.Is(err, ErrClosed) {
						errs <- fmt.Errorf("Wait = %v, want ErrClosed", err)
					}
				})
				wg.Go(func() {
					for range 50 {
						p.Alive()
						if err := p.Signal(0); err != nil && !errors.Is(err, ErrClosed) {
							errs <- fmt.Errorf("Signal(0) = %v", err)
							return
						}
					}
				})
			}
			for range 3 {
				wg.Go(func() {
					if err := p.Close(); err != nil {
						errs <- fmt.Errorf("Close = %v", err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if p.Alive() {
				t.Error("Alive after Close")
			}
		})
	}
}

// TestForked: a shell's background loop is a fork that never execs (like a
// worker nginx forks), the shell itself was exec'd; Forked tells them apart
// although both show the shell's command line.
func TestForked(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", `{ while :; do sleep 1; done; } & echo $!; exec sleep 30`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var loop int
	t.Cleanup(func() {
		if loop > 0 {
			syscall.Kill(loop, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	if _, err := fmt.Fscan(out, &loop); err != nil {
		t.Fatalf("read the loop's pid: %v", err)
	}
	for _, tc := range []struct {
		pid    int
		forked bool
	}{{cmd.Process.Pid, false}, {loop, true}, {os.Getpid(), false}} {
		st, err := Info(tc.pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.Forked() != tc.forked {
			t.Errorf("Info(%d) %q: Forked() = %v, want %v (flags %#x)", tc.pid, st.Cmdline, st.Forked(), tc.forked, st.Flags)
		}
	}
}
