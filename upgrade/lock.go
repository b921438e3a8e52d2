package upgrade

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/batonhq/baton/pidfile"
	"golang.org/x/sys/unix"
)

// LockPath is the lock one orchestrator holds per pid file.
func LockPath(pidfile string) string { return pidfile + ".upgrade.lock" }

// LockError is ErrLocked with the holder's pid (0 when unknown).
type LockError struct {
	Path string
	PID  int
}

func (e *LockError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("upgrade: %s is held by pid %d: another upgrade is running", e.Path, e.PID)
	}
	return fmt.Sprintf("upgrade: %s is held: another upgrade is running", e.Path)
}

func (e *LockError) Unwrap() error { return ErrLocked }

// Lock is the orchestrator lock on one pid file.
type Lock struct {
	f    *os.File // holds the flock; nil after Release
	path string
}

// AcquireLock takes the lock at path without waiting and writes this
// process's pid into it, so that a second orchestrator can name the holder.
// A held lock is a *LockError.
//
// The file is opened (or created, mode 0644) without following a symlink
// and without truncating it, and checked on its descriptor before anything
// is written (pidfile.Options.OpenState): as root, a symlink or hard link
// planted at the lock path must not make baton truncate the file it names,
// nor a FIFO hang it. A file another user could have planted is refused
// with an error wrapping ErrBadInput (the CLI exits 2). The pid is written
// through the same descriptor.
func AcquireLock(path string) (*Lock, error) {
	f, err := pidfile.Options{}.OpenState(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		if denied(err) {
			return nil, fmt.Errorf("upgrade: lock %s: %w", path, err)
		}
		return nil, fmt.Errorf("%w: lock: %w", ErrBadInput, err)
	}
	if err := flockNB(f); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &LockError{Path: path, PID: lockHolder(path)}
		}
		return nil, fmt.Errorf("upgrade: lock %s: %w", path, err)
	}
	// The pid is written once the lock is ours, so a reader never sees a
	// pid that does not hold it.
	if err := writeLockPid(f, strconv.Itoa(os.Getpid())+"\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("upgrade: lock %s: %w", path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// flockNB takes an exclusive flock(2) on f without waiting.
func flockNB(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// writeLockPid replaces the content of the lock file f with s.
func writeLockPid(f *os.File, s string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(s), 0)
	return err
}

// lockHolder is the pid written in the lock file at path, 0 when unknown
// or the file is not one to trust.
func lockHolder(path string) int {
	data, _, err := pidfile.Options{}.ReadState(path, 64)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Release empties the lock file and unlocks. The file stays (removing it
// would race with a second orchestrator that opened it already). A second
// call is a no-op.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	// Closing the only descriptor of the open file description releases
	// the flock (flock(2)).
	err := l.f.Close()
	l.f = nil
	return err
}

// lockHolderIfLocked returns the pid holding the lock at path, 0 when it is
// free or unknown. It never takes the lock (pidfile.Locked tests it).
func lockHolderIfLocked(path string) int {
	pid, locked, err := pidfile.Locked(path)
	if err != nil || !locked {
		return 0
	}
	if pid <= 0 {
		return -1
	}
	return pid
}
