package upgrade

// What Upgrade exec'd but that carries no master title: a new master still
// booting under its program's name (unicorn loads the app for as long as it
// takes before it writes its pid file), or a binary replaced by something
// that never gets ready. It is no worker of the old master, and a rollback
// stops it before the pid file names the old master again.

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// untitledSys is f's system where every master the old master old started
// is titled title (the fake titles every process "nginx: ...") and the
// holders of the listeners are every live process (the fake gives them all
// the same one). RestoreOldbin fails the test while such a child lives.
func untitledSys(t *testing.T, f *fakeSys, old int, title ...string) System {
	sys := f.system()
	info, children := sys.Info, sys.Children
	retitle := func(st procs.Stat) procs.Stat {
		f.mu.Lock()
		defer f.mu.Unlock()
		if p := f.procs[st.PID]; p != nil && st.PPID == old && !p.workers {
			st.Cmdline = title
		}
		return st
	}
	sys.Info = func(pid int) (procs.Stat, error) {
		st, err := info(pid)
		if err != nil {
			return st, err
		}
		return retitle(st), nil
	}
	sys.Children = func(pid int) ([]procs.Stat, error) {
		kids, err := children(pid)
		for i := range kids {
			kids[i] = retitle(kids[i])
		}
		return kids, err
	}
	sys.Holders = func([]uint64) ([]int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []int
		for pid, p := range f.procs {
			if !isClosed(p.dead) {
				out = append(out, pid)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	restore := sys.RestoreOldbin
	sys.RestoreOldbin = func(path string) error {
		if kids := booting(f, old); len(kids) > 0 {
			t.Errorf("%s restored while the old master's children %v still run", path, kids)
		}
		return restore(path)
	}
	return sys
}

// booting lists the live children of old that are not workers.
func booting(f *fakeSys, old int) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, c := range f.children(old) {
		if !f.procs[c].workers {
			out = append(out, c)
		}
	}
	return out
}

func untitledMachine(t *testing.T, f *fakeSys, sys System) *Machine {
	m, err := New(Options{Pidfile: f.pidfile, SpawnTimeout: 30 * time.Second, DrainTimeout: 30 * time.Second, StopTimeout: 10 * time.Second, Sys: sys})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFakeUntitledNewBinaryStopped: the new nginx binary was replaced by
// "sleep 120", which holds the inherited listeners and never gets ready.
// After the spawn timeout the rollback stops it (nginx ignores USR2 while
// it lives).
func TestFakeUntitledNewBinaryStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		f.neverWritesPid = true
		old := f.pidOf(t)
		_, err := untitledMachine(t, f, untitledSys(t, f, old, "sleep", "120")).Start(t.Context())
		if !errors.Is(err, ErrRolledBack) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("start: %v, want a rolled-back timeout", err)
		}
		if kids := booting(f, old); len(kids) > 0 {
			t.Fatalf("the old master's children %v still run after the rollback", kids)
		}
		var hung int
		for pid := range f.procs {
			if f.procs[pid].stat.PPID == old && !f.procs[pid].workers {
				hung = pid
			}
		}
		if got := strings.Join(f.signalsTo(hung), ","); hung == 0 || got != "QUIT" {
			t.Errorf("the hung new binary %d got %q, want QUIT", hung, got)
		}
		if pid := f.pidOf(t); pid != old {
			t.Errorf("%s names %d, want the old master %d", f.pidfile, pid, old)
		}
	})
}

// TestFakeRollbackStopsBootingMaster: the orchestrator died right after
// USR2 (no journal left), while the new unicorn master loads its app under
// the ruby command line; a second one holds the listeners too. status says
// spawning, and rollback stops both before it restores the pid file.
func TestFakeRollbackStopsBootingMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		f.neverWritesPid = true
		old := f.pidOf(t)
		f.signal(old, syscall.SIGUSR2)
		f.mu.Lock()
		second := f.spawn(old, "", false)
		f.mu.Unlock()
		sys := untitledSys(t, f, old, "/usr/bin/ruby3.1", "/srv/app/bin/unicorn", "-D", "-c", "/srv/app/unicorn.rb")
		rep, err := untitledMachine(t, f, sys).Status(t.Context())
		if err != nil || rep.State != Spawning {
			t.Fatalf("status: %s, %v; want spawning (findings %q)", rep.State, err, rep.Findings)
		}
		if rep.Old == nil || rep.Old.ID.PID != old || len(rep.Old.Workers) != 2 {
			t.Errorf("status: old master %+v, want %d with its 2 workers", rep.Old, old)
		}
		kids := booting(f, old)
		if len(kids) != 2 {
			t.Fatalf("children %v, want the new master and %d", kids, second)
		}
		if _, err := untitledMachine(t, f, sys).Rollback(t.Context()); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		for _, pid := range kids {
			if got := strings.Join(f.signalsTo(pid), ","); got != "QUIT" {
				t.Errorf("child %d got %q, want QUIT", pid, got)
			}
		}
		if pid := f.pidOf(t); pid != old {
			t.Errorf("%s names %d, want the old master %d", f.pidfile, pid, old)
		}
		if got := f.signalsTo(old); len(got) != 1 {
			t.Errorf("old master got %q, want only the USR2", got)
		}
	})
}

// TestMasterUntitledChild tells what Upgrade exec'd from workers by title,
// listeners and, for unicorn's worker_exec, environment.
func TestMasterUntitledChild(t *testing.T) {
	const master, child = 100, 101
	for _, tc := range []struct {
		name, flavor string
		cmdline      []string
		env          []string
		listens      bool // the child holds the master's listener
		want         bool // a child master, not a worker
	}{
		{name: "nginx-booting", flavor: "nginx", cmdline: []string{"/usr/sbin/nginx", "-c", "/etc/nginx.conf"}, listens: true, want: true},
		{name: "nginx-replaced-binary", flavor: "nginx", cmdline: []string{"sleep", "120"}, listens: true, want: true},
		{name: "nginx-worker", flavor: "nginx", cmdline: []string{"nginx: worker process"}, listens: true},
		{name: "mid-execve", flavor: "nginx", listens: true},
		{name: "nginx-cache-manager", flavor: "nginx", cmdline: []string{"nginx: cache manager process"}},
		{name: "unicorn-booting", flavor: "unicorn", cmdline: []string{"/usr/bin/ruby3.1", "/srv/bin/unicorn", "-c", "u.rb"}, env: []string{"UNICORN_FD=8,9"}, listens: true, want: true},
		{name: "unicorn-worker", flavor: "unicorn", cmdline: []string{"unicorn worker[0] -c u.rb"}, listens: true},
		{name: "unicorn-worker-exec-booting", flavor: "unicorn", cmdline: []string{"/usr/bin/ruby3.1", "/srv/bin/unicorn", "-c", "u.rb"}, env: []string{"UNICORN_FD=8,9", "UNICORN_WORKER=0,10,11"}, listens: true},
		{name: "unicorn-fork-no-listener", flavor: "unicorn", cmdline: []string{"/usr/bin/ruby3.1", "-e", "sleep"}},
		{name: "gunicorn-worker-untitled", flavor: "gunicorn", cmdline: []string{"/usr/bin/python3", "/usr/bin/gunicorn", "app:app"}, listens: true},
		{name: "baton-worker", flavor: "baton", cmdline: []string{"/usr/bin/baton", "demo-app"}, listens: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared := procs.Listener{Inode: 4242, FD: 3, Network: "tcp", Addr: "127.0.0.1:80"}
			kid := procs.Stat{PID: child, PPID: master, State: 'S', Start: 2, Cmdline: tc.cmdline}
			m, err := New(Options{Pidfile: "/run/app.pid", Flavor: tc.flavor, Sys: System{
				Children: func(int) ([]procs.Stat, error) { return []procs.Stat{kid}, nil },
				Listeners: func(pid int) ([]procs.Listener, error) {
					if pid == master || tc.listens {
						return []procs.Listener{shared}, nil
					}
					return []procs.Listener{{Inode: 7, FD: 3, Network: "unix", Addr: "/run/other.sock"}}, nil
				},
				Facts:      func(pid int) MasterFacts { return MasterFacts{PID: pid, Environ: tc.env} },
				ReadStatus: func(string) (statusfile.Master, error) { return statusfile.Master{}, errors.ErrUnsupported },
			}})
			if err != nil {
				t.Fatal(err)
			}
			if m.flavor, err = LookupFlavor(tc.flavor); err != nil {
				t.Fatal(err)
			}
			mo := m.master(procs.Stat{PID: master, PPID: 1, State: 'S', Start: 1}, nil)
			if got := len(mo.ChildMasters) == 1; got != tc.want || len(mo.Workers)+len(mo.ChildMasters) != 1 {
				t.Errorf("child masters %v, workers %v; want a child master: %v", mo.ChildMasters, mo.Workers, tc.want)
			}
		})
	}
}
