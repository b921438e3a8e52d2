package pidfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// create calls Create and closes the File when the test ends.
func create(t *testing.T, path string, pid int) *File {
	t.Helper()
	f, err := Create(path, pid, Options{})
	if err != nil {
		t.Fatalf("Create(%s, %d): %v", path, pid, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// wantContent fails unless path holds exactly content.
func wantContent(t *testing.T, path, content string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Fatalf("%s holds %q, want %q", path, got, content)
	}
}

// wantAbsent fails unless path does not exist.
func wantAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (%v), want it absent", path, err)
	}
}

// wantOnly fails unless dir holds exactly the named entries: no leftover
// temporary files.
func wantOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// wantRunning fails unless err says a live master with pid runs at path.
func wantRunning(t *testing.T, err error, path string, pid int) {
	t.Helper()
	if !errors.Is(err, ErrRunning) {
		t.Fatalf("got %v, want ErrRunning", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Path != path || e.PID != pid {
		t.Fatalf("error %#v: want path %s, pid %d", err, path, pid)
	}
	if want := "already running as pid " + strconv.Itoa(pid); !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q lacks %q", err, want)
	}
}

func TestCreate(t *testing.T) {
	me := os.Getpid()
	t.Run("writes-0644-whatever-the-umask", func(t *testing.T) {
		old := syscall.Umask(0o077)
		defer syscall.Umask(old)
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		f := create(t, p, me)
		wantContent(t, p, strconv.Itoa(me)+"\n")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o644 {
			t.Errorf("mode %v, want 0644", fi.Mode())
		}
		if f.Path() != p || f.PID() != me {
			t.Errorf("File = %s, %d; want %s, %d", f.Path(), f.PID(), p, me)
		}
		wantOnly(t, dir, "app.pid")
		pid, locked, err := Locked(p)
		if err != nil || !locked || pid != me {
			t.Fatalf("Locked = %d, %v, %v; want %d, true", pid, locked, err, me)
		}
	})
	t.Run("replaces-stale-file", func(t *testing.T) {
		p := writeFile(t, "99999\n")
		create(t, p, me)
		wantContent(t, p, strconv.Itoa(me)+"\n")
		wantOnly(t, filepath.Dir(p), "app.pid")
	})
	t.Run("same-path-twice", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.pid")
		create(t, p, me)
		_, err := Create(p, 4242, Options{})
		wantRunning(t, err, p, me)
		wantContent(t, p, strconv.Itoa(me)+"\n")
		wantOnly(t, filepath.Dir(p), "app.pid")
	})
	t.Run("locked-holder-wrote-garbage", func(t *testing.T) {
		// The pid comes from /proc/locks when the file does not say it.
		p := filepath.Join(t.TempDir(), "app.pid")
		create(t, p, me)
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Create(p, 4242, Options{})
		wantRunning(t, err, p, me)
	})
	t.Run("concurrent", func(t *testing.T) {
		// However the goroutines interleave, exactly one wins the path.
		p := filepath.Join(t.TempDir(), "app.pid")
		const n = 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []*File
			errs []error
		)
		for i := range n {
			wg.Go(func() {
				f, err := Create(p, 1000+i, Options{})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				wins = append(wins, f)
			})
		}
		wg.Wait()
		for _, f := range wins {
			t.Cleanup(func() { f.Close() })
		}
		if len(wins) != 1 {
			t.Fatalf("%d Creates won, want 1 (errors: %v)", len(wins), errs)
		}
		for _, err := range errs {
			if !errors.Is(err, ErrRunning) {
				t.Errorf("loser: %v, want ErrRunning", err)
			}
		}
		wantContent(t, p, strconv.Itoa(wins[0].PID())+"\n")
		wantOnly(t, filepath.Dir(p), "app.pid")
	})

	errorCases := []struct {
		name  string
		setup func(t *testing.T) string
		pid   int
		err   error
	}{
		{
			name: "symlink",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				p := filepath.Join(dir, "app.pid")
				if err := os.Symlink(filepath.Join(dir, "elsewhere"), p); err != nil {
					t.Fatal(err)
				}
				return p
			},
			pid: me,
			err: ErrSymlink,
		},
		{name: "pid-1", setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "a.pid") }, pid: 1, err: ErrMalformed},
		{name: "pid-above-max", setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "a.pid") }, pid: PIDMax() + 1, err: ErrMalformed},
		{name: "missing-directory", setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "no", "a.pid") }, pid: me, err: fs.ErrNotExist},
		{name: "directory-at-path", setup: func(t *testing.T) string { return t.TempDir() }, pid: me, err: ErrMalformed},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.setup(t)
			before, _ := os.ReadDir(filepath.Dir(p))
			f, err := Create(p, tt.pid, Options{})
			if err == nil {
				f.Close()
				t.Fatalf("Create succeeded, want %v", tt.err)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Create: %v, want %v", err, tt.err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Path != p {
				t.Fatalf("error %#v does not name %s", err, p)
			}
			after, _ := os.ReadDir(filepath.Dir(p))
			if len(after) != len(before) {
				t.Errorf("Create left files behind: %v -> %v", before, after)
			}
		})
	}
}

// TestCreateLockedByOtherProcess: a second master fails fast naming the
// first, and succeeds once the first is dead.
func TestCreateLockedByOtherProcess(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.pid")
	h := startHelper(t, "hold", p)
	_, err := Create(p, os.Getpid(), Options{})
	wantRunning(t, err, p, h.pid)
	wantContent(t, p, strconv.Itoa(h.pid)+"\n")

	h.kill(t)
	create(t, p, os.Getpid())
	wantContent(t, p, strconv.Itoa(os.Getpid())+"\n")
}

func TestLocked(t *testing.T) {
	t.Run("holder-lives-then-dies", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.pid")
		h := startHelper(t, "hold", p)
		pid, locked, err := Locked(p)
		if err != nil || !locked || pid != h.pid {
			t.Fatalf("Locked = %d, %v, %v; want %d, true", pid, locked, err, h.pid)
		}
		h.kill(t)
		pid, locked, err = Locked(p)
		if err != nil || locked || pid != h.pid {
			t.Fatalf("after kill: Locked = %d, %v, %v; want %d, false", pid, locked, err, h.pid)
		}
	})
	t.Run("travels-with-rename", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.pid")
		h := startHelper(t, "hold-oldbin", p)
		pid, locked, err := Locked(OldbinPath(p))
		if err != nil || !locked || pid != h.pid {
			t.Fatalf("Locked(oldbin) = %d, %v, %v; want %d, true", pid, locked, err, h.pid)
		}
		if _, _, err := Locked(p); !errors.Is(err, ErrMissing) {
			t.Fatalf("Locked(path) after rename: %v, want ErrMissing", err)
		}
		// The successor can now write the path while the old master lives.
		create(t, p, os.Getpid())
		if _, locked, _ := Locked(OldbinPath(p)); !locked {
			t.Fatal("old master's .oldbin lost its lock")
		}
	})
	t.Run("not-inherited-by-children", func(t *testing.T) {
		// A child started while we hold the lock must not keep it alive
		// after we let go: the descriptor is close-on-exec.
		p := filepath.Join(t.TempDir(), "app.pid")
		f := create(t, p, os.Getpid())
		startHelper(t, "live")
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, locked, err := Locked(p); err != nil || locked {
			t.Fatalf("after Close with a live child: locked=%v, %v; want unlocked", locked, err)
		}
	})
	t.Run("unlocked-file", func(t *testing.T) {
		pid, locked, err := Locked(writeFile(t, "4321\n"))
		if err != nil || locked || pid != 4321 {
			t.Fatalf("Locked = %d, %v, %v; want 4321, false", pid, locked, err)
		}
	})
	t.Run("locked-but-malformed", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.pid")
		create(t, p, os.Getpid())
		// Truncate and rewrite the same (locked) inode.
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		pid, locked, err := Locked(p)
		if !errors.Is(err, ErrMalformed) || !locked || pid != 0 {
			t.Fatalf("Locked = %d, %v, %v; want 0, true, ErrMalformed", pid, locked, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "none.pid")
		if _, locked, err := Locked(p); !errors.Is(err, ErrMissing) || locked {
			t.Fatalf("Locked = %v, %v; want false, ErrMissing", locked, err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.pid")
		f := create(t, p, os.Getpid())
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, locked, err := Locked(p); err != nil || locked {
			t.Fatalf("after Close: locked=%v, %v", locked, err)
		}
		wantContent(t, p, strconv.Itoa(os.Getpid())+"\n")
	})
}

func TestRenameOldbin(t *testing.T) {
	me := os.Getpid()
	t.Run("round-trip", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		f := create(t, p, me)
		if err := f.RenameOldbin(); err != nil {
			t.Fatal(err)
		}
		if f.Path() != OldbinPath(p) {
			t.Errorf("Path = %s after RenameOldbin", f.Path())
		}
		wantAbsent(t, p)
		wantContent(t, OldbinPath(p), strconv.Itoa(me)+"\n")
		if _, locked, _ := Locked(OldbinPath(p)); !locked {
			t.Error("lock did not travel to .oldbin")
		}
		if err := f.RenameOldbin(); err == nil {
			t.Error("second RenameOldbin succeeded")
		}
		if err := f.Restore(); err != nil {
			t.Fatal(err)
		}
		if f.Path() != p {
			t.Errorf("Path = %s after Restore", f.Path())
		}
		wantOnly(t, dir, "app.pid")
		if _, locked, _ := Locked(p); !locked {
			t.Error("lock did not travel back")
		}
		if err := f.Restore(); err == nil {
			t.Error("Restore of a file not renamed succeeded")
		}
	})
	t.Run("restored-by-someone-else", func(t *testing.T) {
		// An orchestrator's rollback renamed the file back first: Restore
		// adopts it, and Remove still knows the file as its own.
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		f, err := Create(p, os.Getpid(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.RenameOldbin(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(OldbinPath(p), p); err != nil {
			t.Fatal(err)
		}
		if err := f.Restore(); err != nil {
			t.Fatalf("Restore after an outside restore: %v", err)
		}
		if f.Path() != p {
			t.Errorf("Path = %s, want %s", f.Path(), p)
		}
		if err := f.Remove(); err != nil {
			t.Fatalf("Remove after adopting: %v", err)
		}
		wantAbsent(t, p)
	})
	t.Run("restore-refuses-a-stranger", func(t *testing.T) {
		// .oldbin gone and a different file at path: not ours, refused.
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		f, err := Create(p, os.Getpid(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.RenameOldbin(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(OldbinPath(p)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("99999\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := f.Restore(); err == nil {
			t.Fatal("Restore adopted a file that is not its own")
		}
		wantContent(t, p, "99999\n")
	})
	t.Run("replaces-stale-oldbin", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		if err := os.WriteFile(OldbinPath(p), []byte("99999\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f := create(t, p, me)
		if err := f.RenameOldbin(); err != nil {
			t.Fatal(err)
		}
		wantContent(t, OldbinPath(p), strconv.Itoa(me)+"\n")
		wantOnly(t, dir, "app.pid.oldbin")
	})
	t.Run("oldbin-held-by-live-master", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.pid")
		h := startHelper(t, "hold", OldbinPath(p))
		f := create(t, p, me)
		wantRunning(t, f.RenameOldbin(), OldbinPath(p), h.pid)
		wantContent(t, p, strconv.Itoa(me)+"\n")
		if f.Path() != p {
			t.Errorf("Path moved to %s on failure", f.Path())
		}
	})
	t.Run("not-owner", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		f := create(t, p, me)
		// Someone replaces the file behind the lock's back.
		other := filepath.Join(dir, "other")
		if err := os.WriteFile(other, []byte("4242\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, p); err != nil {
			t.Fatal(err)
		}
		if err := f.RenameOldbin(); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("RenameOldbin: %v, want ErrNotOwner", err)
		}
		wantContent(t, p, "4242\n")
		wantAbsent(t, OldbinPath(p))
	})
}

func TestRestore(t *testing.T) {
	me := os.Getpid()
	// renamed returns a File of ours already at .oldbin.
	renamed := func(t *testing.T) (*File, string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "app.pid")
		f := create(t, p, me)
		if err := f.RenameOldbin(); err != nil {
			t.Fatal(err)
		}
		return f, p
	}
	t.Run("refuses-locked-successor", func(t *testing.T) {
		f, p := renamed(t)
		h := startHelper(t, "hold", p)
		wantRunning(t, f.Restore(), p, h.pid)
		wantContent(t, p, strconv.Itoa(h.pid)+"\n")
		wantContent(t, OldbinPath(p), strconv.Itoa(me)+"\n")
	})
	t.Run("refuses-live-unlocked-pid", func(t *testing.T) {
		f, p := renamed(t)
		h := startHelper(t, "live")
		if err := os.WriteFile(p, []byte(strconv.Itoa(h.pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wantRunning(t, f.Restore(), p, h.pid)
		wantContent(t, OldbinPath(p), strconv.Itoa(me)+"\n")
	})
	// An orchestrator's rollback restores the same file at the same time
	// (link(2) to the pid file, then unlink .oldbin): caught half-way, the
	// file is back, and the master must take it as restored, not keep
	// believing it is at .oldbin (it then refused every later USR2: the
	// soak test found it).
	t.Run("orchestrator-restoring-at-once", func(t *testing.T) {
		f, p := renamed(t)
		if err := os.Link(OldbinPath(p), p); err != nil {
			t.Fatal(err)
		}
		if err := f.Restore(); err != nil {
			t.Fatalf("restore while the orchestrator restores the same file: %v", err)
		}
		if f.Path() != p {
			t.Errorf("the file believes it is at %s, want %s", f.Path(), p)
		}
		wantContent(t, p, strconv.Itoa(me)+"\n")
	})
	t.Run("replaces-dead-successor", func(t *testing.T) {
		f, p := renamed(t)
		h := startHelper(t, "hold", p)
		h.kill(t)
		if err := f.Restore(); err != nil {
			t.Fatal(err)
		}
		wantContent(t, p, strconv.Itoa(me)+"\n")
		wantAbsent(t, OldbinPath(p))
	})

	const other = 4242
	errPerm := errors.New("permission denied")
	probeCases := []struct {
		name  string
		probe Probe
		err   error // nil: restored
	}{
		{name: "alive", probe: fakeProbe(other, time.Now().Add(-time.Hour), nil), err: ErrRunning},
		{name: "gone", probe: fakeProbe(other, time.Time{}, fs.ErrNotExist)},
		{name: "reused", probe: fakeProbe(other, time.Now().Add(time.Hour), nil)},
		{name: "probe-error", probe: fakeProbe(other, time.Time{}, errPerm), err: errPerm},
	}
	for _, tt := range probeCases {
		t.Run("probe-"+tt.name, func(t *testing.T) {
			f, p := renamed(t)
			if err := os.WriteFile(p, []byte(strconv.Itoa(other)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := f.RestoreWith(tt.probe)
			if tt.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				wantContent(t, p, strconv.Itoa(me)+"\n")
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("RestoreWith: %v, want %v", err, tt.err)
			}
			wantContent(t, p, strconv.Itoa(other)+"\n")
			if f.Path() != OldbinPath(p) {
				t.Errorf("Path moved to %s on failure", f.Path())
			}
		})
	}
	t.Run("replaces-garbage", func(t *testing.T) {
		f, p := renamed(t)
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := f.Restore(); err != nil {
			t.Fatal(err)
		}
		wantContent(t, p, strconv.Itoa(me)+"\n")
	})
}

func TestRemove(t *testing.T) {
	me := os.Getpid()
	t.Run("own", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		f := create(t, p, me)
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
		wantOnly(t, dir)
		if err := f.Remove(); !errors.Is(err, ErrMissing) {
			t.Fatalf("second Remove: %v, want ErrMissing", err)
		}
	})
	t.Run("after-rename", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.pid")
		f := create(t, p, me)
		if err := f.RenameOldbin(); err != nil {
			t.Fatal(err)
		}
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
		wantOnly(t, dir)
	})
	t.Run("never-a-successors", func(t *testing.T) {
		// The old master let go of its lock (it is exiting) and a new
		// master took the path meanwhile: Remove must leave it alone.
		p := filepath.Join(t.TempDir(), "app.pid")
		f := create(t, p, me)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		h := startHelper(t, "hold", p)
		err := f.Remove()
		if !errors.Is(err, ErrNotOwner) {
			t.Fatalf("Remove: %v, want ErrNotOwner", err)
		}
		wantContent(t, p, strconv.Itoa(h.pid)+"\n")
		if pid, locked, err := Locked(p); err != nil || !locked || pid != h.pid {
			t.Fatalf("successor's file: Locked = %d, %v, %v", pid, locked, err)
		}
	})
}

func TestRestoreOldbin(t *testing.T) {
	// setup writes the .oldbin (unless "") and the file at path (unless "")
	// in a fresh directory.
	setup := func(t *testing.T, oldbin, current string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "nginx.pid")
		if oldbin != "" {
			if err := os.WriteFile(OldbinPath(p), []byte(oldbin), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if current != "" {
			if err := os.WriteFile(p, []byte(current), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	t.Run("path-absent", func(t *testing.T) {
		p := setup(t, "4321\n", "")
		if err := RestoreOldbin(p, fakeProbe(0, time.Time{}, nil)); err != nil {
			t.Fatal(err)
		}
		wantContent(t, p, "4321\n")
		wantAbsent(t, OldbinPath(p))
	})
	t.Run("path-names-dead-process", func(t *testing.T) {
		h := startHelper(t, "live")
		h.kill(t)
		p := setup(t, "4321\n", strconv.Itoa(h.pid)+"\n")
		if err := RestoreOldbin(p, nil); err != nil {
			t.Fatal(err)
		}
		wantContent(t, p, "4321\n")
	})
	t.Run("path-names-live-process", func(t *testing.T) {
		h := startHelper(t, "live")
		p := setup(t, "4321\n", strconv.Itoa(h.pid)+"\n")
		wantRunning(t, RestoreOldbin(p, nil), p, h.pid)
		wantContent(t, OldbinPath(p), "4321\n")
	})
	t.Run("path-locked", func(t *testing.T) {
		p := setup(t, "4321\n", "")
		h := startHelper(t, "hold", p)
		wantRunning(t, RestoreOldbin(p, fakeProbe(h.pid, time.Time{}, fs.ErrNotExist)), p, h.pid)
		wantContent(t, OldbinPath(p), "4321\n")
	})

	errorCases := []struct {
		name  string
		setup func(t *testing.T) string
		err   error
	}{
		{name: "oldbin-missing", setup: func(t *testing.T) string { return setup(t, "", "") }, err: ErrMissing},
		{name: "oldbin-malformed", setup: func(t *testing.T) string { return setup(t, "nope\n", "") }, err: ErrMalformed},
		{name: "oldbin-empty", setup: func(t *testing.T) string { return setup(t, "\n", "") }, err: ErrEmpty},
		{
			name: "oldbin-symlink",
			setup: func(t *testing.T) string {
				p := setup(t, "", "")
				if err := os.Symlink("/etc/hostname", OldbinPath(p)); err != nil {
					t.Fatal(err)
				}
				return p
			},
			err: ErrSymlink,
		},
		{
			name: "path-symlink",
			setup: func(t *testing.T) string {
				p := setup(t, "4321\n", "")
				if err := os.Symlink("/etc/hostname", p); err != nil {
					t.Fatal(err)
				}
				return p
			},
			err: ErrSymlink,
		},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.setup(t)
			err := RestoreOldbin(p, fakeProbe(0, time.Time{}, fs.ErrNotExist))
			if !errors.Is(err, tt.err) {
				t.Fatalf("RestoreOldbin: %v, want %v", err, tt.err)
			}
			var e *Error
			if !errors.As(err, &e) || (e.Path != p && e.Path != OldbinPath(p)) {
				t.Fatalf("error %#v names neither path", err)
			}
		})
	}
}
