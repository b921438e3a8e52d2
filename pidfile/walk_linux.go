//go:build linux

package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symlinks one walk follows, as the kernel's
// MAXSYMLINKS does for path resolution (path_resolution(7)): a loop ends.
const maxSymlinks = 40

// open opens path with flag (or, for openCheck, as an O_PATH descriptor
// only to check it) and checks what it opened: as root every directory from
// "/" down, and always the file itself. O_NOFOLLOW, O_NONBLOCK (a FIFO
// must not hang the reader), O_NOCTTY and O_CLOEXEC are added. The caller
// closes the file.
func (r rules) open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	reading := flag != openCheck
	if !reading {
		flag = unix.O_PATH
	}
	flag |= unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	var (
		fd   int
		real string
		err  error
	)
	if r.dirs {
		w := walk{r: r, path: path}
		fd, real, err = w.resolve(flag, uint32(perm.Perm()))
	} else {
		real = path
		fd, err = unix.Open(path, flag, uint32(perm.Perm()))
		if errors.Is(err, unix.ELOOP) || err == nil && isLink(fd) || symlinkDenied(unix.AT_FDCWD, path, err) {
			closeFD(fd, err)
			return nil, &Error{Path: path, Err: ErrSymlink}
		}
		switch {
		case errors.Is(err, unix.ENOENT):
			err = &Error{Path: path, Err: fmt.Errorf("%w (%w)", ErrMissing, errAbsent)}
		case err != nil:
			err = ioError(path, &fs.PathError{Op: "open", Path: path, Err: err})
		}
	}
	if err != nil {
		if !reading && errors.Is(err, errAbsent) {
			return nil, errAbsent
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), real)
	st, err := fstat(fd)
	if err != nil {
		f.Close()
		return nil, ioError(path, err)
	}
	if err := r.checkFile(path, real, st, reading); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// walk resolves one path component by component from "/", each opened
// with openat(2) relative to the directory before it and checked on its
// descriptor, so that nothing is looked up again by name after its check.
type walk struct {
	r     rules
	path  string  // as given, for errors
	stack []dirFD // the directories from "/" to the current one, all checked
	links int     // symlinks followed so far
}

// dirFD is a checked directory: an O_PATH descriptor and its real path.
type dirFD struct {
	fd   int
	path string
}

// resolve opens the last component of w.path with flag and perm, following
// symlinks only where the rules trust them, and returns the descriptor and
// the real path opened. A missing last component is errAbsent wrapped in
// the *Error.
func (w *walk) resolve(flag int, perm uint32) (int, string, error) {
	abs, err := filepath.Abs(w.path)
	if err != nil {
		return -1, "", &Error{Path: w.path, Err: err}
	}
	defer w.close()
	if err := w.root(); err != nil {
		return -1, "", err
	}
	todo := split(abs)
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			w.up()
			continue
		}
		if len(todo) > 0 {
			target, err := w.enter(name)
			if err != nil {
				return -1, "", err
			}
			todo = w.follow(target, todo)
			continue
		}
		dir := w.top()
		real := join(dir.path, name)
		fd, err := unix.Openat(dir.fd, name, flag, perm)
		if errors.Is(err, unix.ELOOP) || err == nil && isLink(fd) || symlinkDenied(dir.fd, name, err) {
			closeFD(fd, err)
			if !w.r.followLast {
				return -1, "", &Error{Path: w.path, Err: ErrSymlink}
			}
			target, err := w.link(name)
			if err != nil {
				return -1, "", err
			}
			todo = w.follow(target, todo)
			continue
		}
		if errors.Is(err, unix.ENOENT) {
			return -1, "", &Error{Path: w.path, Err: fmt.Errorf("%w (%w)", ErrMissing, errAbsent)}
		}
		if err != nil {
			return -1, "", ioError(w.path, &fs.PathError{Op: "open", Path: real, Err: err})
		}
		return fd, real, nil
	}
	return -1, "", &Error{Path: w.path, Err: fmt.Errorf("%w: not a regular file (a directory)", ErrMalformed)}
}

// split returns the components of p, without empty ones and ".".
func split(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// root starts the walk at "/", checked.
func (w *walk) root() error {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ioError(w.path, &fs.PathError{Op: "open", Path: "/", Err: err})
	}
	return w.push(fd, "/")
}

// push checks the directory open as fd and makes it the current one.
func (w *walk) push(fd int, path string) error {
	st, err := fstat(fd)
	if err == nil && !st.mode.IsDir() {
		err = unix.ENOTDIR
	}
	if err != nil {
		unix.Close(fd)
		return ioError(w.path, &fs.PathError{Op: "stat", Path: path, Err: err})
	}
	if err := w.r.checkDir(w.path, path, st); err != nil {
		unix.Close(fd)
		return err
	}
	w.stack = append(w.stack, dirFD{fd: fd, path: path})
	return nil
}

func (w *walk) top() dirFD { return w.stack[len(w.stack)-1] }

// up goes to the parent directory, which the walk came through: ".." of
// "/" is "/".
func (w *walk) up() {
	if len(w.stack) > 1 {
		unix.Close(w.top().fd)
		w.stack = w.stack[:len(w.stack)-1]
	}
}

func (w *walk) close() {
	for _, d := range w.stack {
		unix.Close(d.fd)
	}
	w.stack = nil
}

// enter opens the directory name in the current one. When name is a
// symlink it returns its target for follow instead.
func (w *walk) enter(name string) (target string, err error) {
	dir := w.top()
	real := join(dir.path, name)
	fd, err := unix.Openat(dir.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		return "", w.push(fd, real)
	case errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP):
		return w.link(name)
	default:
		return "", ioError(w.path, &fs.PathError{Op: "open", Path: real, Err: err})
	}
}

// link returns the target of the symlink name in the current directory,
// if the rules trust it: it is owned by an allowed user (the directory
// holding it passed the checks, so only such a user or, in a sticky
// directory, nobody else can replace it). The symlink is read through the
// descriptor that was checked (readlinkat(2) with an empty path).
func (w *walk) link(name string) (string, error) {
	dir := w.top()
	real := join(dir.path, name)
	fd, err := unix.Openat(dir.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", ioError(w.path, &fs.PathError{Op: "open", Path: real, Err: err})
	}
	defer unix.Close(fd)
	st, err := fstat(fd)
	if err != nil {
		return "", ioError(w.path, &fs.PathError{Op: "stat", Path: real, Err: err})
	}
	if st.mode.Type() != fs.ModeSymlink {
		return "", ioError(w.path, &fs.PathError{Op: "open", Path: real, Err: unix.ENOTDIR})
	}
	if w.links++; w.links > maxSymlinks {
		return "", &Error{Path: w.path, Err: fmt.Errorf("more than %d symbolic links (%w)", maxSymlinks, unix.ELOOP)}
	}
	if !w.r.allowed(st.uid) {
		return "", insecure(w.path, fmt.Sprintf("symlink %s is owned by uid %d, not %s", real, st.uid, w.r.owners()), "that user")
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", ioError(w.path, &fs.PathError{Op: "readlink", Path: real, Err: err})
	}
	return string(buf[:n]), nil
}

// follow continues the walk at target (a symlink's, "" for none) before
// the components left in todo: an absolute target from "/", a relative one
// from the directory holding the symlink.
func (w *walk) follow(target string, todo []string) []string {
	if target == "" {
		return todo
	}
	if strings.HasPrefix(target, "/") {
		for len(w.stack) > 1 {
			w.up()
		}
	}
	return append(split(target), todo...)
}

// isLink reports whether fd (an O_PATH|O_NOFOLLOW descriptor) is a symlink.
func isLink(fd int) bool {
	st, err := fstat(fd)
	return err == nil && st.mode.Type() == fs.ModeSymlink
}

// symlinkDenied reports whether err is the EACCES that open(2) with O_CREAT
// gives for another user's symlink in a sticky directory (the kernel's
// protected_symlinks and may_create_in_sticky rules): it is a symlink,
// refused as one, not a permission to ask for.
func symlinkDenied(dirfd int, name string, err error) bool {
	if !errors.Is(err, unix.EACCES) {
		return false
	}
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// closeFD closes fd when err says it was opened.
func closeFD(fd int, err error) {
	if err == nil {
		unix.Close(fd)
	}
}

// fstat returns what the checks need of fd's inode.
func fstat(fd int) (inode, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return inode{}, err
	}
	mode := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if st.Mode&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return inode{mode: mode, uid: st.Uid, nlink: uint64(st.Nlink)}, nil
}
