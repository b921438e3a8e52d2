package upgrade

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrPermission: baton may not do what the command needs — read the pid
// file, take the lock, write the journal, signal or inspect the master —
// as the user it runs as; nothing was signalled or changed (exit 2).
var ErrPermission = errors.New("upgrade: permission denied")

// PermissionError says what baton may not do, whose it is and as whom it
// runs. It wraps ErrPermission.
type PermissionError struct {
	What  string // "signal master 1234", "take the lock /run/x.pid.upgrade.lock"
	Owner int    // uid of the master or file; -1 when unknown
	As    int    // effective uid baton runs as
	Err   error  // the system's answer, if any
}

func (e *PermissionError) Error() string {
	msg := fmt.Sprintf("cannot %s as %s", e.What, userName(e.As))
	switch {
	case e.Owner == 0:
		msg += fmt.Sprintf(": it belongs to %s; run baton as root", userName(e.Owner))
	case e.Owner > 0 && e.Owner != e.As:
		msg += fmt.Sprintf(": it belongs to %s; run baton as that user or as root", userName(e.Owner))
	default:
		msg += ": run baton as the master's user or as root"
	}
	return msg
}

// Unwrap gives ErrPermission, ErrBadInput (nothing was touched: the CLI
// exits 2) and the system's error.
func (e *PermissionError) Unwrap() []error { return []error{ErrPermission, ErrBadInput, e.Err} }

// userName is "name (uid N)", or "uid N" when the name is unknown.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// denied reports whether err is the system refusing access.
func denied(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// ownerOf is the uid owning path, -1 when unknown.
func ownerOf(path string) int {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return -1
	}
	return int(st.Uid)
}

// permission turns a refusal of the system into a *PermissionError about
// path; other errors pass unchanged.
func permission(err error, what, path string) error {
	if err == nil || !denied(err) {
		return err
	}
	owner := ownerOf(path)
	if owner < 0 {
		owner = ownerOf(filepath.Dir(path))
	}
	return &PermissionError{What: what, Owner: owner, As: os.Geteuid(), Err: err}
}

// mayWrite checks, before anything is signalled, that the journal and the
// lock can be written next to the pid file.
func (m *Machine) mayWrite() error {
	dir := filepath.Dir(m.opts.Pidfile)
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return permission(err, "write the journal in "+dir, dir)
	}
	for _, path := range []string{JournalPath(m.opts.Pidfile), LockPath(m.opts.Pidfile)} {
		err := unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return permission(err, "write "+path, path)
		}
	}
	return nil
}

// mayAct checks, before the lock is taken and anything is signalled or
// written, that baton may signal the masters the pid files name (kill(2)
// with signal 0 delivers nothing: it asks the kernel for permission) and
// write the journal and the lock next to the pid file.
func (m *Machine) mayAct() error {
	if os.Geteuid() == 0 {
		return nil // root may signal and write anything (CAP_KILL, CAP_DAC_OVERRIDE)
	}
	for _, path := range []string{m.opts.Pidfile, m.flavor.AsidePath(m.opts.Pidfile)} {
		p, _ := m.readPid(path)
		if p.PID <= 1 {
			continue
		}
		if err := syscall.Kill(p.PID, 0); errors.Is(err, syscall.EPERM) {
			owner := -1
			if st, err := m.sys.Info(p.PID); err == nil {
				owner = st.UID
			}
			return &PermissionError{What: fmt.Sprintf("signal master %d", p.PID), Owner: owner, As: os.Geteuid(), Err: err}
		}
	}
	return m.mayWrite()
}

// mayInspect reports, for status, a master whose binary, working directory
// and sockets baton could not read: /proc hides them from other users.
func (m *Machine) mayInspect(masters ...*MasterObs) error {
	for _, mo := range masters {
		if mo != nil && mo.Binary == "" && mo.Dir == "" && os.Geteuid() != 0 && mo.UID != os.Geteuid() {
			return &PermissionError{What: fmt.Sprintf("inspect master %d (its binary, directory and sockets)", mo.ID.PID), Owner: mo.UID, As: os.Geteuid()}
		}
	}
	return nil
}
