package upgrade

// Timeout logic under testing/synctest: the Machine drives a fake system
// (processes in a map, real pid files in a temporary directory) in a bubble
// whose clock only moves when everything waits, so 30-second timeouts take
// no time and their length can be asserted exactly.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/batonhq/baton/procs"
)

type fakeProc struct {
	stat    procs.Stat
	workers bool // a worker, not a master
	// inert: it records signals and acts on none but SIGKILL (none at all
	// as PID 1), like a service manager or a server a script runs.
	inert bool
	dead  chan struct{}
}

// fakeSys is an nginx-like world. Behaviour switches are set per test.
type fakeSys struct {
	t       *testing.T
	pidfile string
	mu      sync.Mutex
	next    int
	procs   map[int]*fakeProc
	log     []string // "PID SIG"

	neverWritesPid bool // the new master starts but never writes its pid file
	ignoreWinch    bool // the old master ignores WINCH
	newIgnoresStop bool // the new master ignores QUIT and TERM
	refusesHup     bool // HUP changes nothing (nginx refusing its configuration)
	// upgradeDelay: the old master acts on USR2 this long after it is sent
	// (nginx handles it at its next sigsuspend; unicorn and gunicorn queue
	// it for their main loop).
	upgradeDelay time.Duration
	// ttinDelay: a counting master acts on TTIN this long after it is sent
	// (a slow fork on a loaded machine).
	ttinDelay time.Duration
	// onUpgrade, when set, runs (with mu held) once a new master nu and
	// its workers are spawned.
	onUpgrade func(nu int)
	// restartsWorkers: a master that stopped its workers on WINCH starts
	// them again by itself when its new master dies, one now and one
	// restartGap later, as nginx forks them one by one (ngx_reap_children
	// sets ngx_restart when it is not accepting); noaccepting holds the
	// masters that stopped their workers on WINCH.
	restartsWorkers bool
	restartGap      time.Duration
	noaccepting     map[int]bool
	// newDiesOnWinch: the new master dies as the old one acts on WINCH.
	newDiesOnWinch bool

	// target, when set, makes masters unicorn-like (fake_counting_test.go):
	// pid → worker_processes; busy: workers that finish a request this long
	// after they are told to stop.
	target  map[int]int
	busy    map[int]time.Duration
	exiting map[int]bool
}

func newFakeSys(t *testing.T) *fakeSys {
	f := &fakeSys{t: t, pidfile: filepath.Join(t.TempDir(), "app.pid"), next: 100, procs: map[int]*fakeProc{}}
	old := f.spawnMaster(1)
	f.writePid(f.pidfile, old)
	return f
}

// spawn adds a process; callers hold mu or run before the test starts.
func (f *fakeSys) spawn(ppid int, cmdline string, worker bool) int {
	f.next++
	pid := f.next
	f.procs[pid] = &fakeProc{
		stat: procs.Stat{PID: pid, PPID: ppid, State: 'S', Start: uint64(pid) * 7, StartTime: time.Now().Add(-time.Hour),
			Exe: "/bin/true", Cwd: "/", Cmdline: []string{cmdline}},
		workers: worker,
		dead:    make(chan struct{}),
	}
	if worker {
		f.procs[pid].stat.Flags = pfForkNoExec // workers are forked, never exec'd
	}
	return pid
}

func (f *fakeSys) spawnMaster(ppid int) int {
	if f.target != nil {
		return f.spawnCounting(ppid)
	}
	pid := f.spawn(ppid, "nginx: master process /bin/true", false)
	f.spawn(pid, "nginx: worker process", true)
	f.spawn(pid, "nginx: worker process", true)
	return pid
}

func (f *fakeSys) writePid(path string, pid int) {
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		f.t.Error(err)
	}
}

func (f *fakeSys) kill(pid int) {
	p := f.procs[pid]
	if p == nil || isClosed(p.dead) {
		return
	}
	close(p.dead)
	// Orphans go to init, like nginx's workers when their master is killed.
	for _, c := range f.procs {
		if c.stat.PPID == pid && !isClosed(c.dead) {
			c.stat.PPID = 1
		}
	}
	// The old master reaps its new master: restores its pid file and
	// respawns its workers (nginx).
	if parent := f.procs[p.stat.PPID]; parent != nil && !p.workers && !isClosed(parent.dead) {
		if data, _ := os.ReadFile(f.pidfile + ".oldbin"); strings.TrimSpace(string(data)) == strconv.Itoa(parent.stat.PID) {
			os.Rename(f.pidfile+".oldbin", f.pidfile)
		}
		if ppid := parent.stat.PID; f.restartsWorkers && f.noaccepting[ppid] {
			delete(f.noaccepting, ppid)
			f.spawn(ppid, "nginx: worker process", true)
			time.AfterFunc(f.restartGap, func() {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.spawn(ppid, "nginx: worker process", true)
			})
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (f *fakeSys) children(pid int) []int {
	var out []int
	for cpid, c := range f.procs {
		if c.stat.PPID == pid && !isClosed(c.dead) {
			out = append(out, cpid)
		}
	}
	slices.Sort(out) // in pid order, as a real /proc lists them; never the map's order
	return out
}

func (f *fakeSys) signal(pid int, sig syscall.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf("%d %s", pid, SignalName(sig)))
	p := f.procs[pid]
	if p.inert {
		if sig == syscall.SIGKILL && pid != 1 {
			f.kill(pid)
		}
		return
	}
	isNew := p.stat.PPID != 1
	switch {
	case sig == syscall.SIGKILL:
		f.kill(pid)
	case p.workers:
		f.kill(pid) // workers stop on any signal
	case sig == syscall.SIGUSR2 && f.upgradeDelay > 0:
		time.AfterFunc(f.upgradeDelay, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.upgrade(pid)
		})
	case sig == syscall.SIGUSR2:
		f.upgrade(pid)
	case f.target != nil && (sig == syscall.SIGWINCH || sig == syscall.SIGTTIN || sig == syscall.SIGTTOU):
		f.countingSignal(pid, sig)
	case sig == syscall.SIGWINCH:
		if !f.ignoreWinch {
			for _, c := range f.children(pid) {
				if f.procs[c].workers {
					f.kill(c)
				}
			}
			if f.noaccepting == nil {
				f.noaccepting = map[int]bool{}
			}
			f.noaccepting[pid] = true
		}
		if f.newDiesOnWinch {
			for _, c := range f.children(pid) {
				if !f.procs[c].workers {
					f.kill(c)
				}
			}
		}
	case sig == syscall.SIGHUP && f.refusesHup:
	case sig == syscall.SIGHUP:
		// nginx: a new generation of workers; the old ones stop.
		for _, w := range f.workersOf(pid) {
			f.kill(w)
		}
		f.spawn(pid, "nginx: worker process", true)
		f.spawn(pid, "nginx: worker process", true)
	case sig == syscall.SIGQUIT || sig == syscall.SIGTERM:
		if isNew && f.newIgnoresStop {
			return
		}
		// Its workers stop with it; a new master it started does not.
		for _, c := range f.workersOf(pid) {
			f.kill(c)
		}
		for _, path := range []string{f.pidfile, f.pidfile + ".oldbin"} {
			if data, _ := os.ReadFile(path); strings.TrimSpace(string(data)) == strconv.Itoa(pid) {
				os.Remove(path)
			}
		}
		f.kill(pid)
	}
}

// upgrade is the old master acting on USR2; callers hold mu.
func (f *fakeSys) upgrade(pid int) {
	os.Rename(f.pidfile, f.pidfile+".oldbin")
	nu := f.spawnMaster(pid)
	if f.onUpgrade != nil {
		f.onUpgrade(nu)
	}
	if !f.neverWritesPid {
		f.writePid(f.pidfile, nu)
	}
}

func (f *fakeSys) workersOf(pid int) []int {
	var out []int
	for _, c := range f.children(pid) {
		if f.procs[c].workers {
			out = append(out, c)
		}
	}
	return out
}

type fakeHandle struct {
	f  *fakeSys
	id procs.Identity
	p  *fakeProc
}

func (h *fakeHandle) Identity() procs.Identity { return h.id }
func (h *fakeHandle) Signal(sig syscall.Signal) error {
	if isClosed(h.p.dead) {
		return &procs.SignalError{PID: h.id.PID, Signal: sig, Err: procs.ErrGone}
	}
	h.f.signal(h.id.PID, sig)
	return nil
}
func (h *fakeHandle) Alive() bool { return !isClosed(h.p.dead) }
func (h *fakeHandle) Wait(ctx context.Context) error {
	select {
	case <-h.p.dead:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fake wait: %w", ctx.Err())
	}
}
func (h *fakeHandle) Close() error { return nil }

func (f *fakeSys) system() System {
	return System{
		Info: func(pid int) (procs.Stat, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			p := f.procs[pid]
			if p == nil || isClosed(p.dead) {
				return procs.Stat{}, fmt.Errorf("fake %d: %w", pid, procs.ErrGone)
			}
			return p.stat, nil
		},
		Children: func(pid int) ([]procs.Stat, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			var out []procs.Stat
			for _, c := range f.children(pid) {
				out = append(out, f.procs[c].stat)
			}
			return out, nil
		},
		Listeners: func(pid int) ([]procs.Listener, error) {
			return []procs.Listener{{Inode: 4242, FD: 3, Network: "tcp", Addr: "127.0.0.1:80"}}, nil
		},
		Open: func(id procs.Identity) (Process, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			p := f.procs[id.PID]
			if p == nil || isClosed(p.dead) {
				return nil, procs.ErrGone
			}
			if p.stat.Start != id.Start {
				return nil, procs.ErrReused
			}
			return &fakeHandle{f: f, id: id, p: p}, nil
		},
		ReadPid: func(path string) (int, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return 0, err
			}
			return strconv.Atoi(strings.TrimSpace(string(b)))
		},
		RestoreOldbin: func(path string) error { return os.Rename(path+".oldbin", path) },
		Facts:         func(pid int) MasterFacts { return MasterFacts{PID: pid, Session: pid} },
		Watch:         func(string) (<-chan struct{}, func()) { return nil, func() {} },
		WatchProcs:    func([]int) (<-chan struct{}, func()) { return nil, func() {} },
		Holders:       func([]uint64) ([]int, error) { return nil, nil },
	}
}

func (f *fakeSys) signalsTo(pid int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.log {
		if p, sig, _ := strings.Cut(l, " "); p == strconv.Itoa(pid) {
			out = append(out, sig)
		}
	}
	return out
}

func fakeMachine(t *testing.T, f *fakeSys) *Machine {
	m, err := New(Options{
		Pidfile:      f.pidfile,
		SpawnTimeout: 30 * time.Second,
		DrainTimeout: 30 * time.Second,
		VerifyFor:    2 * time.Second,
		StopTimeout:  10 * time.Second,
		Sys:          f.system(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFakeSpawnTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		f.neverWritesPid = true
		start := time.Now()
		rep, err := fakeMachine(t, f).Start(t.Context())
		if !errors.Is(err, ErrRolledBack) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("start: %v, want a rolled-back timeout", err)
		}
		// The package prefix once, where the error leaves the package.
		if want := "upgrade: failed and rolled back: spawn: timed out after 30s: "; !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), "upgrade:") != 1 {
			t.Errorf("error %q, want it to start %q and say 'upgrade:' once", err, want)
		}
		var spawnFailed time.Duration
		for _, s := range rep.Steps {
			if s.Name == "spawn" && strings.HasPrefix(s.Msg, "failed") {
				spawnFailed = s.Elapsed
			}
		}
		if spawnFailed != 30*time.Second {
			t.Errorf("spawn failed after %v, want exactly the 30s spawn timeout", spawnFailed)
		}
		if rep.State != RolledBack {
			t.Errorf("state %s", rep.State)
		}
		// The unannounced new master was found as the old one's child and
		// stopped gracefully.
		if got := strings.Join(f.signalsTo(rep.Journal.New.PID), ","); rep.Journal.New.PID == 0 || got != "QUIT" {
			t.Errorf("new master got %q, want QUIT", got)
		}
		if d := time.Since(start); d > 31*time.Second {
			t.Errorf("took %v of fake time", d)
		}
	})
}

func TestFakeStopEscalation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		f.newIgnoresStop = true
		if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
			t.Fatalf("start: %v", err)
		}
		nu, _ := strconv.Atoi(strings.TrimSpace(readFile(t, f.pidfile)))
		f.mu.Lock()
		newWorkers := f.workersOf(nu)
		f.mu.Unlock()
		start := time.Now()
		rep, err := fakeMachine(t, f).Rollback(t.Context())
		if err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if got := strings.Join(f.signalsTo(nu), ","); got != "QUIT,TERM,KILL" {
			t.Errorf("new master got %q, want QUIT,TERM,KILL", got)
		}
		if d := time.Since(start); d < 20*time.Second || d > 21*time.Second {
			t.Errorf("rollback took %v of fake time, want two 10s stop timeouts", d)
		}
		for _, w := range newWorkers {
			// Gracefully first: a fast stop resets the connection a
			// worker is busy with.
			if got := strings.Join(f.signalsTo(w), ","); got != "QUIT" {
				t.Errorf("orphaned worker %d got %q, want QUIT", w, got)
			}
		}
		if rep.State != RolledBack {
			t.Errorf("state %s", rep.State)
		}
	})
}

func TestFakeDrainTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		f.ignoreWinch = true
		rep, err := fakeMachine(t, f).Start(t.Context())
		if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "2 old workers left") {
			t.Fatalf("start: %v", err)
		}
		for _, s := range rep.Steps {
			if s.Name == "drain" && strings.HasPrefix(s.Msg, "failed") && s.Elapsed != 30*time.Second {
				t.Errorf("drain failed after %v, want 30s", s.Elapsed)
			}
		}
		if rep.State != RolledBack {
			t.Errorf("state %s", rep.State)
		}
	})
}

// TestFakeClockStepAfterSpawn: the wall clock stepped forward after the
// pid files were written (NTP, a VM resumed), so both masters' start times,
// computed from the clock now, read as later than their files. The journal
// pins both by pid and start ticks: they are its masters, not reused pids,
// and the commit goes through (it exited 4 "the pid was reused" in CI).
func TestFakeClockStepAfterSpawn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The files' times are the real clock's (synctest's starts in 2000).
		fi, err := os.Stat(f.pidfile)
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		for _, p := range f.procs {
			p.stat.StartTime = fi.ModTime().Add(time.Hour)
		}
		f.mu.Unlock()
		rep, err := fakeMachine(t, f).Commit(t.Context())
		if err != nil || rep.State != Committed {
			t.Fatalf("commit after a clock step: %v, state %s, findings %q", err, rep.State, rep.Findings)
		}
	})
}

// TestFakeNewMasterDiesAfterDrain: the new master dies after the old one
// stopped its workers. nginx then restarts them by itself, one fork after
// the other; a HUP from the rollback now would make it read its
// configuration on disk again (the new release's: TestFaultNewMasterKilled
// saw nginx serve the new version after a rollback that HUPed it between
// its two forks). So the rollback waits and sends nothing. A master that
// restarts nothing (a WINCH that reached it after its new master died)
// gets HUP after all, once nothing moved for nudgeEvery.
func TestFakeNewMasterDiesAfterDrain(t *testing.T) {
	for _, restarts := range []bool{true, false} {
		t.Run(fmt.Sprintf("restarts=%v", restarts), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSys(t)
				f.restartsWorkers, f.restartGap = restarts, 50*time.Millisecond
				f.newDiesOnWinch = true
				old := f.pidOf(t)
				start := time.Now()
				rep, err := fakeMachine(t, f).Start(t.Context())
				if !errors.Is(err, ErrRolledBack) || rep.State != RolledBack {
					t.Fatalf("start: %v, state %s, want rolled back", err, rep.State)
				}
				hup := slices.Contains(f.signalsTo(old), "HUP")
				took := time.Since(start)
				switch {
				case restarts && hup:
					t.Errorf("old master %d got HUP while restarting its workers itself: %v", old, f.signalsTo(old))
				case !restarts && !hup:
					t.Errorf("old master %d without workers got no HUP: %v", old, f.signalsTo(old))
				case !restarts && took < nudgeEvery:
					t.Errorf("HUP after %v, want it only after %v without movement", took, nudgeEvery)
				}
				f.mu.Lock()
				n := len(f.workersOf(old))
				f.mu.Unlock()
				if n != 2 {
					t.Errorf("old master has %d workers after the rollback, want 2", n)
				}
			})
		})
	}
}

func TestFakeRecycledPidNeverSignalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The old master dies and its pid goes to another process.
		f.mu.Lock()
		f.kill(101)
		f.procs[101] = &fakeProc{stat: procs.Stat{PID: 101, PPID: 1, State: 'S', Start: 999999, Cmdline: []string{"nginx: master process /bin/true"}}, dead: make(chan struct{})}
		f.mu.Unlock()
		rep, err := fakeMachine(t, f).Rollback(t.Context())
		if !errors.Is(err, ErrIllegalTransition) {
			t.Fatalf("rollback to a recycled pid: %v, want refused", err)
		}
		if !strings.Contains(strings.Join(rep.Findings, " "), "was reused") {
			t.Errorf("findings %q do not say the pid was reused", rep.Findings)
		}
		if got := f.signalsTo(101); len(got) != 2 || got[0] != "USR2" || got[1] != "WINCH" {
			t.Errorf("pid 101 got %v after it was recycled", got)
		}
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFakeNginxMasterFromUpgradeDrains: nginx counts a master started by an
// upgrade as daemonized and honours WINCH, yet such a master is no session
// leader and its title has overwritten NGINX= in /proc/PID/environ. The
// journal of the committed upgrade that started it is what tells baton.
func TestFakeNginxMasterFromUpgradeDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		sys := f.system()
		// Only the first master (pid 101) daemonized itself; later ones
		// share its session and show no NGINX= variable.
		sys.Facts = func(pid int) MasterFacts { return MasterFacts{PID: pid, Session: 101} }
		run := func(commit bool) *Report {
			t.Helper()
			m, err := New(Options{Pidfile: f.pidfile, SpawnTimeout: 30 * time.Second, DrainTimeout: 30 * time.Second,
				VerifyFor: time.Second, StopTimeout: 10 * time.Second, Commit: commit, Sys: sys})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := m.Start(t.Context())
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			return rep
		}
		first := run(true)
		if first.State != Committed {
			t.Fatalf("first upgrade ended %s", first.State)
		}
		second := f.pidOf(t)
		rep := run(false)
		for _, s := range rep.Steps {
			if strings.Contains(s.Msg, "ignores WINCH") {
				t.Errorf("second upgrade skipped the drain: %s: %s", s.Name, s.Msg)
			}
		}
		if got := f.signalsTo(second); len(got) < 2 || got[1] != "WINCH" {
			t.Errorf("master %d started by the first upgrade got %v, want USR2 then WINCH", second, got)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.children(second) {
			if f.procs[c].workers {
				t.Errorf("old master %d still has worker %d after the drain", second, c)
			}
		}
	})
}

// pidOf reads the pid file.
func (f *fakeSys) pidOf(t *testing.T) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, f.pidfile)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
