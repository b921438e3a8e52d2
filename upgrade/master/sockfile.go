//go:build linux

package master

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// This file holds what baton does with the files of unix sockets it binds:
// their mode from bind(2) on, a stale file replaced, and the file unlinked
// by the last master out only if it is still baton's.

// removeStaleSocket removes a socket file nobody accepts on, so that bind
// can take its place, and refuses to touch anything else.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("master: listen unix:%s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("master: listen unix:%s: exists and is not a socket", path)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("master: listen unix:%s: %w", path, err)
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	if err == nil {
		return fmt.Errorf("master: listen unix:%s: another process accepts on it", path)
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("master: listen unix:%s: probing the existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("master: listen unix:%s: removing stale socket: %w", path, err)
	}
	return nil
}

// unlinkIfOwned removes the unix socket file of l when baton created it and
// it is still the same file; the caller decides that no other generation
// serves on it.
func (l *listener) unlinkIfOwned() error {
	if !l.owned || l.spec.Unix == "" || l.spec.Unix[0] == '@' {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(l.spec.Unix, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("master: unlink %s: %w", l.spec.Unix, err)
	}
	if st.Dev != l.fileDev || st.Ino != l.fileIno {
		return nil // someone else's socket now
	}
	if err := os.Remove(l.spec.Unix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("master: unlink %s: %w", l.spec.Unix, err)
	}
	return nil
}

// bindSocket binds fd to sa, l.spec's address. For a socket file it gives
// the file mode (zero: the umask's) and records the file in l, which must
// be the socket bind created: a failure names its step.
func bindSocket(fd int, sa unix.Sockaddr, l *listener, mode os.FileMode) (op string, err error) {
	s := l.spec
	file := s.Unix != "" && s.Unix[0] != '@'
	if file && mode != 0 {
		err = withUmask(mode, func() error { return unix.Bind(fd, sa) })
	} else {
		err = unix.Bind(fd, sa)
	}
	if err != nil {
		return "bind", err
	}
	if afterBind != nil {
		afterBind(s)
	}
	if !file {
		return "", nil
	}
	// Lstat: what sits at the path now must be a socket, not a symlink
	// someone put there since bind.
	var st unix.Stat_t
	if err := unix.Lstat(s.Unix, &st); err != nil {
		return "stat", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return "stat", errors.New("the socket file was replaced after bind")
	}
	l.owned, l.fileDev, l.fileIno = true, st.Dev, st.Ino
	return "", nil
}

// withUmask runs bind with the umask that makes bind(2) itself create the
// socket file with exactly mode: Linux ignores fchmod(2) on a socket fd
// (it changes the socket inode, not the file), and a chmod(2) by path
// after bind follows a symlink that another user who can write the
// directory swapped in, as root. A temporary name plus rename would still
// chmod a path. The umask is per process (Go's threads share it), so this
// relies on baton creating files and starting processes only from its one
// loop goroutine, which is the one binding (setUp, HUP).
func withUmask(mode os.FileMode, bind func() error) error {
	old := unix.Umask(int(0o777 &^ mode.Perm()))
	defer unix.Umask(old)
	return bind()
}

// afterBind, nil outside tests, runs right after bind(2): the moment another
// user who can write the socket's directory could swap the new socket file
// for a symlink.
var afterBind func(s listenSpec)
