package pidfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the uid a hostile file is given: neither root nor the service
// user of any test.
const nobody = 65534

// hostileRow plants one kind of file another user could have written (or
// that no well-behaved writer leaves behind) at path, with content.
type hostileRow struct {
	name  string
	plant func(t *testing.T, path, content string)
	errs  []error // the refusal wraps one of these
	msg   string  // a substring of the refusal
}

// hostileRows is the matrix every file baton reads is tested against.
func hostileRows() []hostileRow {
	return []hostileRow{
		{
			// A symlink planted by another user, pointing at a file of root's.
			name: "symlink-foreign",
			plant: func(t *testing.T, path, content string) {
				target := filepath.Join(t.TempDir(), "real")
				writeMode(t, target, content, 0o644, 0)
				symlinkAs(t, target, path, nobody)
			},
			// Refused as a symlink, or for its owner where a pid file's
			// trusted symlinks are followed.
			errs: []error{ErrSymlink, ErrInsecure},
			msg:  "symlink",
		},
		{
			name:  "foreign-owned",
			plant: func(t *testing.T, path, content string) { writeMode(t, path, content, 0o644, nobody) },
			errs:  []error{ErrInsecure},
			msg:   "owned by uid 65534",
		},
		{
			name:  "group-writable",
			plant: func(t *testing.T, path, content string) { writeMode(t, path, content, 0o664, 0) },
			errs:  []error{ErrInsecure},
			msg:   "writable by other users (mode 0664)",
		},
		{
			// A second name for a file of root's: whoever made it chose what
			// the file says without owning it.
			name: "hard-linked",
			plant: func(t *testing.T, path, content string) {
				other := filepath.Join(filepath.Dir(path), "elsewhere")
				writeMode(t, other, content, 0o644, 0)
				if err := os.Link(other, path); err != nil {
					t.Fatal(err)
				}
			},
			errs: []error{ErrInsecure},
			msg:  "2 hard links",
		},
		{
			// A FIFO must neither hang the reader nor be read.
			name: "fifo",
			plant: func(t *testing.T, path, _ string) {
				if err := syscall.Mkfifo(path, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			errs: []error{ErrMalformed},
			msg:  "not a regular file",
		},
		{
			name: "huge",
			plant: func(t *testing.T, path, content string) {
				writeMode(t, path, content+strings.Repeat(" ", 2<<20), 0o644, 0)
			},
			errs: []error{ErrMalformed},
			msg:  "longer than",
		},
	}
}

// isAny reports whether err wraps one of targets.
func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// writeMode writes content to path with mode and owner uid.
func writeMode(t *testing.T, path, content string, mode fs.FileMode, uid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	chmodChown(t, path, mode, uid)
}

// symlinkAs makes link point at target, owned by uid.
func symlinkAs(t *testing.T, target, link string, uid int) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, uid, 0); err != nil {
		t.Fatal(err)
	}
}

// stickyDir is a root-owned, world-writable sticky directory like /tmp,
// below root-owned private directories: the place where any user may plant
// a file.
func stickyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chmodChown(t, dir, 0o777|fs.ModeSticky, 0)
	return dir
}

// TestHostilePidfiles: a pid file and an .oldbin that another user could
// have planted in a sticky world-writable directory are refused by every
// reader, with an error naming the file; nothing of theirs is read.
func TestHostilePidfiles(t *testing.T) {
	requireRoot(t)
	alive := fakeProbe(4321, time.Now().Add(-time.Hour), nil)
	readers := []struct {
		name string
		read func(path string) error
	}{
		{name: "Read", read: func(p string) error { _, err := Read(p); return err }},
		{name: "ReadLive", read: func(p string) error { _, err := ReadLive(p, alive); return err }},
		{name: "Locked", read: func(p string) error { _, _, err := Locked(p); return err }},
		{name: "RestoreOldbin", read: func(p string) error {
			return RestoreOldbin(strings.TrimSuffix(p, ".oldbin"), alive)
		}},
	}
	for _, row := range hostileRows() {
		for _, r := range readers {
			t.Run(row.name+"/"+r.name, func(t *testing.T) {
				path := filepath.Join(stickyDir(t), "app.pid")
				if r.name == "RestoreOldbin" {
					path = OldbinPath(path)
				}
				row.plant(t, path, "4321\n")
				err := r.read(path)
				if !isAny(err, row.errs) {
					t.Fatalf("%s(%s): %v, want %v", r.name, row.name, err, row.errs)
				}
				if !strings.Contains(err.Error(), row.msg) || !strings.Contains(err.Error(), path) {
					t.Errorf("message %q lacks %q or the path", err, row.msg)
				}
				if r.name == "RestoreOldbin" {
					if _, err := os.Lstat(strings.TrimSuffix(path, ".oldbin")); err == nil {
						t.Errorf("RestoreOldbin restored a hostile .oldbin")
					}
				}
			})
		}
	}
}

// TestSymlinkedDirectoryChecked: a directory reached through a symlink is
// trusted only if the symlink itself is: owned by root (or the service
// user) in a directory that passes the checks. A symlink another user
// planted in a sticky directory is refused even when it points to a
// perfectly secure directory, because that user can point it elsewhere at
// any moment. /var/run -> /run is the common, trusted case.
func TestSymlinkedDirectoryChecked(t *testing.T) {
	requireRoot(t)
	good := tree(t, 0o755, 0, 0o644, 0)
	t.Run("root-symlink-like-var-run", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "var-run")
		symlinkAs(t, filepath.Dir(good), link, 0)
		p := filepath.Join(link, "app.pid")
		if err := CheckSecure(p, Options{}); err != nil {
			t.Fatalf("CheckSecure: %v", err)
		}
		if pid, err := Read(p); err != nil || pid != 4321 {
			t.Fatalf("Read = %d, %v; want 4321", pid, err)
		}
	})
	t.Run("foreign-symlink-in-sticky-dir", func(t *testing.T) {
		link := filepath.Join(stickyDir(t), "run")
		symlinkAs(t, filepath.Dir(good), link, nobody)
		p := filepath.Join(link, "app.pid")
		for name, err := range map[string]error{
			"CheckSecure": CheckSecure(p, Options{}),
			"Read":        func() error { _, err := Read(p); return err }(),
		} {
			if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "symlink "+link+" is owned by uid 65534") {
				t.Errorf("%s: %v, want ErrInsecure naming the symlink's owner", name, err)
			}
		}
	})
	t.Run("relative-symlink-dotdot", func(t *testing.T) {
		// A relative target climbs from where the symlink really is.
		link := filepath.Join(filepath.Dir(good), "self")
		symlinkAs(t, "../run", link, 0)
		if pid, err := Read(filepath.Join(link, "app.pid")); err != nil || pid != 4321 {
			t.Fatalf("Read = %d, %v; want 4321", pid, err)
		}
	})
	t.Run("symlink-loop", func(t *testing.T) {
		dir := t.TempDir()
		symlinkAs(t, "b", filepath.Join(dir, "a"), 0)
		symlinkAs(t, "a", filepath.Join(dir, "b"), 0)
		if _, err := Read(filepath.Join(dir, "a", "app.pid")); err == nil || !strings.Contains(err.Error(), "symbolic links") {
			t.Fatalf("Read through a loop: %v", err)
		}
	})
}

// TestReadSymlinkFlip is the time-of-check/time-of-use race: a symlinked
// directory flips between a secure directory and a world-writable one
// holding an attacker's pid file. Whatever the timing, Read must never
// return the attacker's pid: it checks and reads the very descriptors it
// opened, never reopening a path after checking it.
func TestReadSymlinkFlip(t *testing.T) {
	requireRoot(t)
	good := tree(t, 0o755, 0, 0o644, 0)    // .../run/app.pid holds 4321
	evil := tree(t, 0o777, 0, 0o644, 0)    // world-writable .../run
	writeMode(t, evil, "6666\n", 0o644, 0) // the attacker's pid
	base := t.TempDir()
	link := filepath.Join(base, "cur")
	symlinkAs(t, filepath.Dir(good), link, 0)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tmp := filepath.Join(base, "next")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			target := filepath.Dir(good)
			if i%2 == 1 {
				target = filepath.Dir(evil)
			}
			os.Remove(tmp)
			if os.Symlink(target, tmp) != nil || os.Rename(tmp, link) != nil {
				t.Error("flipping the symlink failed")
				return
			}
		}
	}()
	p := filepath.Join(link, "app.pid")
	var good1, refused int
	deadline := time.Now().Add(2 * time.Second)
	for n := 0; n < 20000 && time.Now().Before(deadline); n++ {
		pid, err := Read(p)
		switch {
		case err == nil && pid == 6666:
			close(stop)
			<-done
			t.Fatalf("read %d: Read served the attacker's pid file", n)
		case err == nil:
			good1++
		case errors.Is(err, ErrInsecure) || errors.Is(err, ErrMissing):
			refused++
		default:
			t.Errorf("read %d: %v", n, err)
		}
	}
	close(stop)
	<-done
	t.Logf("%d reads of the secure file, %d refusals", good1, refused)
	if good1 == 0 || refused == 0 {
		t.Errorf("the race was not exercised: %d good, %d refused", good1, refused)
	}
}

// TestReadState: the journal, lock and status files are refused when
// another user could have written them, whatever baton's euid.
func TestReadState(t *testing.T) {
	requireRoot(t)
	const content = `{"state":"idle"}` + "\n"
	t.Run("ok", func(t *testing.T) {
		p := filepath.Join(stickyDir(t), "app.pid.upgrade.json")
		writeMode(t, p, content, 0o644, 0)
		data, fi, err := Options{}.ReadState(p, 1<<20)
		if err != nil || string(data) != content || fi.Size() != int64(len(content)) {
			t.Fatalf("ReadState = %q, %v; want %q", data, err, content)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, _, err := Options{}.ReadState(filepath.Join(t.TempDir(), "none"), 1<<20)
		if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrMissing) {
			t.Fatalf("ReadState: %v, want ErrMissing", err)
		}
	})
	t.Run("root-symlink", func(t *testing.T) {
		// Even root's own symlink is refused: state files are never symlinks.
		dir := t.TempDir()
		writeMode(t, filepath.Join(dir, "real"), content, 0o644, 0)
		symlinkAs(t, "real", filepath.Join(dir, "j"), 0)
		if _, _, err := (Options{}).ReadState(filepath.Join(dir, "j"), 1<<20); !errors.Is(err, ErrSymlink) {
			t.Fatalf("ReadState: %v, want ErrSymlink", err)
		}
	})
	for _, row := range hostileRows() {
		t.Run(row.name, func(t *testing.T) {
			p := filepath.Join(stickyDir(t), "app.pid.upgrade.json")
			row.plant(t, p, content)
			data, _, err := Options{}.ReadState(p, 1<<20)
			if !isAny(err, row.errs) || data != nil {
				t.Fatalf("ReadState = %q, %v; want %v", data, err, row.errs)
			}
			if !strings.Contains(err.Error(), row.msg) || !strings.Contains(err.Error(), p) {
				t.Errorf("message %q lacks %q or the path", err, row.msg)
			}
		})
	}
}

// TestWriteState: the atomic writer never follows a symlink planted at its
// path or at a temporary name, replaces (never writes through) a hard link,
// and removes its own temporary files that a killed writer left behind.
func TestWriteState(t *testing.T) {
	requireRoot(t)
	dir := stickyDir(t)
	p := filepath.Join(dir, "app.pid.upgrade.json")
	victim := filepath.Join(t.TempDir(), "victim")
	writeMode(t, victim, "precious\n", 0o644, 0)
	symlinkAs(t, victim, p, nobody)
	stale := filepath.Join(dir, ".app.pid.upgrade.json.tmp123")
	fresh := filepath.Join(dir, ".app.pid.upgrade.json.tmp456")
	foreign := filepath.Join(dir, ".app.pid.upgrade.json.tmp789")
	for _, f := range []string{stale, fresh, foreign} {
		writeMode(t, f, "half", 0o600, 0)
	}
	chmodChown(t, foreign, 0o600, nobody)
	old := time.Now().Add(-2 * time.Minute)
	for _, f := range []string{stale, foreign} {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := (Options{}).WriteState(p, []byte("new\n")); err != nil {
		t.Fatalf("WriteState: %v", err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "precious\n" {
		t.Errorf("the symlink's target was written: %q", data)
	}
	data, fi, err := Options{}.ReadState(p, 1<<20)
	if err != nil || string(data) != "new\n" || fi.Mode().Perm() != 0o644 {
		t.Fatalf("ReadState after WriteState = %q, %v, %v", data, fi, err)
	}
	for f, want := range map[string]bool{stale: false, fresh: true, foreign: true} {
		if _, err := os.Lstat(f); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(f), err == nil, want)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 { // the file, the fresh and the foreign temporary file
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v", names)
	}
}

// TestRemoveTemps: for a caller holding the lock every writer takes, every
// temporary file of path that baton's euid owns is a dead writer's, however
// fresh; another user's file, a symlink (even to one of ours) and a name
// WriteState never gives stay.
func TestRemoveTemps(t *testing.T) {
	requireRoot(t)
	dir := stickyDir(t)
	p := filepath.Join(dir, "app.pid.upgrade.json")
	prefix := filepath.Join(dir, ".app.pid.upgrade.json.tmp")
	ours, foreign, odd, link := prefix+"1", prefix+"2", prefix+"x", prefix+"3"
	writeMode(t, ours, "half", 0o600, 0)
	writeMode(t, odd, "half", 0o600, 0)
	writeMode(t, foreign, "half", 0o600, nobody)
	symlinkAs(t, ours, link, 0)
	if n := RemoveTemps(p); n != 1 {
		t.Errorf("RemoveTemps = %d, want 1", n)
	}
	for f, want := range map[string]bool{ours: false, foreign: true, odd: true, link: true} {
		if _, err := os.Lstat(f); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(f), err == nil, want)
		}
	}
}
