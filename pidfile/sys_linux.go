//go:build linux

package pidfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procLocks is where Linux lists every lock held on the system, see proc(5).
const procLocks = "/proc/locks"

// tryLock takes an exclusive flock(2) on f without blocking. It reports
// errWouldBlock when another open file description holds a lock.
//
// flock locks belong to the open file description, not the path: they move
// with the inode across rename(2), survive only as long as some descriptor
// of that description is open, and Go opens every file O_CLOEXEC, so a
// child the master execs never inherits (and so never prolongs) the lock.
func tryLock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errWouldBlock
		default:
			return os.NewSyscallError("flock", err)
		}
	}
}

var errWouldBlock = errors.New("pidfile: lock held by another process")

// fileKey identifies an inode: the device it lives on and its number.
type fileKey struct {
	dev uint64
	ino uint64
}

// major and minor split a Linux dev_t as glibc's gnu_dev_major/minor do.
func (k fileKey) major() uint64 { return (k.dev>>8)&0xfff | (k.dev>>32)&^0xfff }
func (k fileKey) minor() uint64 { return k.dev&0xff | (k.dev>>12)&^0xff }

// keyOf returns the inode identity and owner of fi, which must come from
// os.Stat, os.Lstat or (*os.File).Stat.
func keyOf(fi fs.FileInfo) (fileKey, uint32) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, 0
	}
	return fileKey{dev: st.Dev, ino: st.Ino}, st.Uid
}

// renameNoReplace renames oldname to newname, failing with fs.ErrExist
// when newname exists: renameat2(2) with RENAME_NOREPLACE, the atomic
// "create if absent" that rename(2) lacks. Where the filesystem does not
// support the flag (EINVAL) it falls back to link(2) and unlink(2), during
// which the file has two links for a moment and secure readers refuse it.
//
// Unlike link and unlink, the rename never shows the file under two names:
// [Options.ReadSecure] refuses a file with more than one link.
func renameNoReplace(oldname, newname string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		if err != nil {
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
		}
		return nil
	}
	if err := os.Link(oldname, newname); err != nil {
		return err
	}
	return os.Remove(oldname)
}

// procStart is the Probe used when none is given: the start time of pid
// from /proc/PID/stat (field 22, in USER_HZ ticks since boot, always 100
// per second on Linux) and the boot time from /proc/stat. A zombie counts
// as gone: it has exited, and in a container whose init does not reap it
// may linger for long. Errors for a gone process wrap fs.ErrNotExist.
//
// procs.StartTime is the full version; pidfile cannot import procs.
func procStart(pid int) (time.Time, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, err
	}
	// comm, in parentheses, may itself hold spaces and ")".
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return time.Time{}, fmt.Errorf("pidfile: /proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return time.Time{}, fmt.Errorf("pidfile: /proc/%d/stat: malformed", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return time.Time{}, fmt.Errorf("pidfile: pid %d is a zombie: %w", pid, fs.ErrNotExist)
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("pidfile: /proc/%d/stat: start time: %w", pid, err)
	}
	boot, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(time.Duration(ticks) * (time.Second / 100)), nil
}

var bootTime = sync.OnceValues(func() (time.Time, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for line := range bytes.Lines(data) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			s, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("pidfile: /proc/stat: btime: %w", err)
			}
			return time.Unix(s, 0), nil
		}
	}
	return time.Time{}, errors.New("pidfile: /proc/stat: no btime")
})

// unsupported is nil where this package works.
func unsupported() error { return nil }
