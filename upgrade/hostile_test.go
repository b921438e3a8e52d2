package upgrade

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/procs"
)

// nobody owns the files another user planted.
const nobody = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("planting files of another user needs root")
	}
}

// stickyDir is a root-owned world-writable sticky directory like /tmp: the
// place where any user may plant a file at baton's journal or lock path.
func stickyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

func plantFile(t *testing.T, path, content string, mode fs.FileMode, uid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// hostile is one kind of file another user could have planted at path:
// plant returns the file that must stay untouched (a symlink's or hard
// link's target), or "".
type hostile struct {
	name  string
	plant func(t *testing.T, path, content string) (victim string)
	msg   string // a substring of the refusal
}

var hostiles = []hostile{
	{
		name: "symlink",
		plant: func(t *testing.T, path, content string) string {
			victim := filepath.Join(t.TempDir(), "victim")
			plantFile(t, victim, content, 0o644, 0)
			if err := os.Symlink(victim, path); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(path, nobody, 0); err != nil {
				t.Fatal(err)
			}
			return victim
		},
		msg: "is a symlink",
	},
	{
		name: "foreign-owned",
		plant: func(t *testing.T, path, content string) string {
			plantFile(t, path, content, 0o644, nobody)
			return ""
		},
		msg: "owned by uid 65534",
	},
	{
		name: "group-writable",
		plant: func(t *testing.T, path, content string) string {
			plantFile(t, path, content, 0o664, 0)
			return ""
		},
		msg: "writable by other users (mode 0664)",
	},
	{
		// A hard link to a file of root's: as root, baton must not write
		// (or truncate) it through the link.
		name: "hard-linked",
		plant: func(t *testing.T, path, content string) string {
			victim := filepath.Join(filepath.Dir(path), "victim")
			plantFile(t, victim, content, 0o644, 0)
			if err := os.Link(victim, path); err != nil {
				t.Fatal(err)
			}
			return victim
		},
		msg: "2 hard links",
	},
	{
		name: "fifo",
		plant: func(t *testing.T, path, _ string) string {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			return ""
		},
		msg: "not a regular file",
	},
	{
		name: "huge",
		plant: func(t *testing.T, path, content string) string {
			plantFile(t, path, content+strings.Repeat(" ", MaxJournalSize), 0o644, 0)
			return ""
		},
		msg: "longer than",
	},
}

// victimContent is what a planted file (or its target) holds: a valid
// journal naming the process an attacker wants signalled.
const victimContent = `{"state":"drained","old":{"pid":4242,"start":1},"new":{"pid":4343,"start":2}}`

// unchanged fails when victim no longer holds victimContent.
func unchanged(t *testing.T, victim string) {
	t.Helper()
	if victim == "" {
		return
	}
	if data, err := os.ReadFile(victim); err != nil || !strings.HasPrefix(string(data), victimContent) {
		t.Errorf("the planted file's target was changed: %.60q, %v", data, err)
	}
}

// TestHostileJournal: a journal another user could have planted is never
// believed, never written through, and not replaced either: reading and
// writing fail with ErrBadInput (the CLI exits 2, before any signal, since
// the journal is written before the first signal), naming the file.
func TestHostileJournal(t *testing.T) {
	requireRoot(t)
	for _, h := range hostiles {
		t.Run(h.name, func(t *testing.T) {
			path := JournalPath(filepath.Join(stickyDir(t), "app.pid"))
			victim := h.plant(t, path, victimContent)
			j, err := ReadJournal(path)
			if !errors.Is(err, ErrBadInput) || j != nil {
				t.Fatalf("ReadJournal = %+v, %v; want ErrBadInput", j, err)
			}
			if !strings.Contains(err.Error(), h.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadJournal: message %q lacks %q or the path", err, h.msg)
			}
			err = WriteJournal(path, &Journal{State: Spawning})
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), h.msg) {
				t.Fatalf("WriteJournal: %v; want ErrBadInput and %q", err, h.msg)
			}
			unchanged(t, victim)
		})
	}
}

// TestHostileLock: a lock file another user could have planted is refused
// with ErrBadInput before it is locked or written: the file a symlink or
// hard link names is not truncated, a FIFO does not hang.
func TestHostileLock(t *testing.T) {
	requireRoot(t)
	for _, h := range hostiles {
		if h.name == "huge" {
			continue // a lock file's size says nothing: baton empties it
		}
		t.Run(h.name, func(t *testing.T) {
			path := LockPath(filepath.Join(stickyDir(t), "app.pid"))
			victim := h.plant(t, path, victimContent)
			l, err := AcquireLock(path)
			if err == nil {
				l.Release()
				t.Fatalf("AcquireLock took a planted %s", h.name)
			}
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), path) {
				t.Fatalf("AcquireLock: %v; want ErrBadInput naming the path", err)
			}
			if h.name != "symlink" && !strings.Contains(err.Error(), h.msg) {
				t.Errorf("message %q lacks %q", err, h.msg)
			}
			unchanged(t, victim)
		})
	}
}

// TestLockRoundTrip: the holder's pid is written through the locked
// descriptor and a second taker is told who holds it; Release empties the
// file and frees the lock.
func TestLockRoundTrip(t *testing.T) {
	path := LockPath(filepath.Join(t.TempDir(), "app.pid"))
	l, err := AcquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := lockHolder(path); got != os.Getpid() {
		t.Errorf("lockHolder = %d, want %d", got, os.Getpid())
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm()&0o022 != 0 {
		t.Fatalf("lock file %v, %v", fi, err)
	}
	// A second open file description conflicts even in this process.
	var le *LockError
	if _, err := AcquireLock(path); !errors.As(err, &le) || le.PID != os.Getpid() || !errors.Is(err, ErrLocked) {
		t.Fatalf("second AcquireLock: %v; want a LockError naming pid %d", err, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Errorf("released lock holds %q", data)
	}
	l2, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("AcquireLock after Release: %v", err)
	}
	l2.Release()
}

// TestJournalRoundTrip: what WriteJournal writes, ReadJournal reads back;
// the file is 0644 whatever the umask, and a corrupt journal of baton's own
// is replaced (only files another user could have planted are refused).
func TestJournalRoundTrip(t *testing.T) {
	path := JournalPath(filepath.Join(t.TempDir(), "app.pid"))
	if err := os.WriteFile(path, []byte("{truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJournal(path); !errors.Is(err, ErrBadInput) {
		t.Fatalf("ReadJournal of a corrupt journal: %v", err)
	}
	now := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	want := &Journal{State: Drained, Flavor: "nginx", Pidfile: "/run/app.pid",
		Old: procs.Identity{PID: 10, Start: 100}, New: procs.Identity{PID: 11, Start: 101},
		Started: now, Updated: now,
		Transitions: []Transition{{At: now, From: Idle, Event: EvSpawn, To: Spawning, By: 12}}}
	if err := WriteJournal(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJournal(path)
	if err != nil || got.State != want.State || got.New != want.New || len(got.Transitions) != 1 || !got.Updated.Equal(now) {
		t.Fatalf("ReadJournal = %+v, %v; want %+v", got, err, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("journal mode %04o, want 0644", fi.Mode().Perm())
	}
	if j, err := ReadJournal(path + ".none"); j != nil || err != nil {
		t.Errorf("missing journal: %v, %v; want nil, nil", j, err)
	}
}

// TestJournalStaleTemps: temporary files that an orchestrator killed
// between create and rename left behind are removed by the next write once
// they are a minute old; a fresh one (a write under way) and another
// user's are left alone.
func TestJournalStaleTemps(t *testing.T) {
	requireRoot(t)
	dir := stickyDir(t)
	path := JournalPath(filepath.Join(dir, "app.pid"))
	temp := func(suffix string, uid int, age time.Duration) string {
		p := filepath.Join(dir, "."+filepath.Base(path)+".tmp"+suffix)
		plantFile(t, p, "{", 0o600, uid)
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := temp("1", 0, 2*time.Minute)
	fresh := temp("2", 0, 0)
	foreign := temp("3", nobody, 2*time.Minute)
	if err := WriteJournal(path, &Journal{State: Idle}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{stale: false, fresh: true, foreign: true} {
		if _, err := os.Lstat(p); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("directory holds %d entries, want the journal and two temporary files", len(ents))
	}
}

// TestLockedVerbRemovesJournalTemps: every journal write holds the
// orchestrator's lock, so a temporary journal file found under the lock was
// left by an orchestrator killed between create and rename, however fresh:
// the next locked verb removes it, even one it refuses. Another user's
// file, a symlink and a name WriteState never gives stay, and status,
// which takes no lock, removes nothing.
func TestLockedVerbRemovesJournalTemps(t *testing.T) {
	requireRoot(t)
	f := newFakeSys(t)
	prefix := filepath.Join(filepath.Dir(f.pidfile), "."+filepath.Base(JournalPath(f.pidfile))+".tmp")
	killed := prefix + "123"
	plantFile(t, killed, "{", 0o600, 0)
	foreign := prefix + "456"
	plantFile(t, foreign, "{", 0o600, nobody)
	other := prefix + "l"
	plantFile(t, other, "{", 0o600, 0)
	link := prefix + "789"
	if err := os.Symlink(killed, link); err != nil {
		t.Fatal(err)
	}
	if _, err := fakeMachine(t, f).Rollback(t.Context()); !errors.Is(err, ErrBadInput) {
		t.Fatalf("rollback while idle: %v, want refused", err)
	}
	for p, want := range map[string]bool{killed: false, foreign: true, other: true, link: true} {
		if _, err := os.Lstat(p); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
	// Without the lock a write may be under way: status leaves its file.
	writing := prefix + "321"
	plantFile(t, writing, "{", 0o600, 0)
	if _, err := fakeMachine(t, f).Status(t.Context()); err != nil {
		t.Fatalf("status: %v", err)
	}
	if _, err := os.Lstat(writing); err != nil {
		t.Errorf("status, which takes no lock, removed %s: %v", filepath.Base(writing), err)
	}
}
