package upgrade

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/batonhq/baton/pidfile"
	"github.com/gofrs/flock"
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
	fl   *flock.Flock
	path string
}

// AcquireLock takes the lock at path without waiting and writes this
// process's pid into it, so that a second orchestrator can name the holder.
// A held lock is a *LockError.
func AcquireLock(path string) (*Lock, error) {
	// O_NOFOLLOW: as root, a symlink planted at the lock path must not make
	// baton truncate the file it points to.
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW), flock.SetPermissions(0o644))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("upgrade: lock %s: %w", path, err)
	}
	if !ok {
		return nil, &LockError{Path: path, PID: lockHolder(path)}
	}
	// The pid is written once the lock is ours, so a reader never sees a
	// pid that does not hold it. flock(2) locks the inode, not the
	// descriptor, so a second open of the same file is fine.
	if err := writePidNoFollow(path); err != nil {
		_ = fl.Unlock()
		return nil, fmt.Errorf("upgrade: lock %s: %w", path, err)
	}
	return &Lock{fl: fl, path: path}, nil
}

func writePidNoFollow(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func lockHolder(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Release unlocks. The file stays (removing it would race with a second
// orchestrator that opened it already). A second call is a no-op.
func (l *Lock) Release() error {
	if l == nil || l.fl == nil {
		return nil
	}
	if f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0); err == nil {
		f.Close()
	}
	err := l.fl.Unlock()
	l.fl = nil
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
