//go:build linux

package procs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procDir is an open /proc/PID directory. Files opened relative to it belong
// to the process it was opened for: once that process is reaped they fail
// with ENOENT or ESRCH even if the pid is reused (proc(5)), so the fields of
// one Info never mix two processes.
type procDir struct {
	pid  int
	fd   int
	name string // "/proc/PID" or a directory below it, for errors
}

func openProcDir(pid int) (procDir, error) {
	if pid <= 0 {
		return procDir{}, fmt.Errorf("procs: invalid pid %d", pid)
	}
	name := "/proc/" + strconv.Itoa(pid)
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if isGoneErrno(err) {
			return procDir{}, &goneError{pid: pid}
		}
		return procDir{}, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return procDir{pid: pid, fd: fd, name: name}, nil
}

func (d procDir) close() { unix.Close(d.fd) }

// openIdentityDir opens /proc/PID of id: an error wrapping ErrGone when id
// has exited or is a zombie, ErrReused when its pid belongs to another
// process now. What is read through the directory afterwards is id's or
// fails.
func openIdentityDir(id Identity) (procDir, error) {
	d, err := openProcDir(id.PID)
	if err != nil {
		return procDir{}, err
	}
	st, err := d.stat()
	if err == nil && st.Zombie() {
		err = &goneError{pid: id.PID, zombie: true}
	}
	if err == nil {
		err = sameIdentity(st, id)
	}
	if err != nil {
		d.close()
		return procDir{}, err
	}
	return d, nil
}

func (d procDir) path(name string) string { return d.name + "/" + name }

// sub opens the directory name below d.
func (d procDir) sub(name string) (procDir, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procDir{}, d.pathError("open", name, err)
	}
	return procDir{pid: d.pid, fd: fd, name: d.path(name)}, nil
}

// names lists the directory, once (it reads from the descriptor's
// offset), through getdents(2) directly for the reason of read.
func (d procDir) names() ([]string, error) {
	buf := make([]byte, 8192)
	var names []string
	for {
		n, err := unix.Getdents(d.fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, d.pathError("readdir", ".", err)
		case n == 0:
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// subNames lists the directory name below d.
func (d procDir) subNames(name string) ([]string, error) {
	t, err := d.sub(name)
	if err != nil {
		return nil, err
	}
	defer t.close()
	return t.names()
}

// pathError maps errno to a goneError when the process went away.
func (d procDir) pathError(op, name string, err error) error {
	if isGoneErrno(err) {
		return &goneError{pid: d.pid}
	}
	return &fs.PathError{Op: op, Path: d.path(name), Err: err}
}

// open opens the file name below d.
func (d procDir) open(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, d.pathError("open", name, err)
	}
	return os.NewFile(uintptr(fd), d.path(name)), nil
}

func (d procDir) read(name string) ([]byte, error) {
	b, op, err := readAt(d.fd, name)
	if err != nil {
		return nil, d.pathError(op, name, err)
	}
	return b, nil
}

// readAt reads the file name (relative to the directory dirfd, or
// absolute) whole, with raw system calls: an *os.File would ask the
// poller to take the descriptor (which /proc files refuse) and stat it,
// three more calls per file, and the looks read a few dozen files each,
// a scan of /proc one per process. op names the call that failed.
func readAt(dirfd int, name string) (b []byte, op string, err error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "open", err
	}
	defer unix.Close(fd)
	b = make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, "read", err
		case n == 0:
			return b, "", nil
		}
		b = b[:len(b)+n]
	}
}

func (d procDir) readlink(name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(d.fd, name, buf)
		if err != nil {
			return "", d.pathError("readlink", name, err)
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// stat reads and parses the stat file of the directory's process.
func (d procDir) stat() (Stat, error) { return readParsed(d, "stat", parseStat) }

// readParsed reads the file name of d's process and parses it; a parse
// error names the file.
func readParsed[T any](d procDir, name string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := d.read(name)
	if err != nil {
		return zero, err
	}
	v, err := parse(b)
	if errors.Is(err, ErrGone) {
		return zero, err
	}
	if err != nil {
		return zero, fmt.Errorf("procs: parse %s: %w", d.path(name), err)
	}
	return v, nil
}

// readStat reads /proc/PID/stat. A missing process is a goneError; a zombie
// is returned as it is (State 'Z').
func readStat(pid int) (Stat, error) {
	if pid <= 0 {
		return Stat{}, fmt.Errorf("procs: invalid pid %d", pid)
	}
	name := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, op, err := readAt(unix.AT_FDCWD, name)
	if err != nil {
		if isGoneErrno(err) {
			return Stat{}, &goneError{pid: pid}
		}
		return Stat{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	st, err := parseStat(b)
	if errors.Is(err, ErrGone) {
		return Stat{}, err
	}
	if err != nil {
		return Stat{}, fmt.Errorf("procs: parse %s: %w", name, err)
	}
	return st, nil
}

// readLiveStat is readStat with a zombie reported as gone.
func readLiveStat(pid int) (Stat, error) {
	st, err := readStat(pid)
	if err != nil {
		return Stat{}, err
	}
	if st.Zombie() {
		return Stat{}, &goneError{pid: pid, zombie: true}
	}
	return st, nil
}

// bootTime returns the wall-clock instant the system booted, as
// CLOCK_REALTIME minus CLOCK_BOOTTIME now. /proc/PID/stat starttime counts
// from boot including time spent suspended (task->start_boottime), which is
// CLOCK_BOOTTIME; /proc/stat btime is rounded to a second and would be up
// to a second off. It is computed on every call because the wall clock can be
// stepped (NTP, settimeofday).
//
// The two clocks are read one after the other; a preemption between the two
// reads would shift the result, so CLOCK_REALTIME is read before and after
// CLOCK_BOOTTIME, the tightest of a few tries is kept, and the midpoint of its
// two realtime reads is used.
func bootTime() (time.Time, error) {
	var best time.Time
	bestSpread := time.Duration(-1)
	for range 3 {
		var rt1, bt, rt2 unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt1); err != nil {
			return time.Time{}, fmt.Errorf("procs: clock_gettime(CLOCK_REALTIME): %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt); err != nil {
			return time.Time{}, fmt.Errorf("procs: clock_gettime(CLOCK_BOOTTIME): %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt2); err != nil {
			return time.Time{}, fmt.Errorf("procs: clock_gettime(CLOCK_REALTIME): %w", err)
		}
		t1, t2 := time.Unix(rt1.Unix()), time.Unix(rt2.Unix())
		spread := t2.Sub(t1)
		if bestSpread < 0 || spread < bestSpread {
			bestSpread = spread
			best = t1.Add(spread / 2).Add(-time.Duration(bt.Nano()))
		}
		if spread < 100*time.Microsecond {
			break
		}
	}
	return best, nil
}

func info(pid int) (Stat, error) {
	boot, err := bootTime()
	if err != nil {
		return Stat{}, err
	}
	return readInfo(pid, boot, true)
}

// brief is info without UID, Exe and Cwd: what telling a master's
// children apart needs (stat: parent, state, flags, start; the command
// line: the title). It reads two files of the five. boot is bootTime's
// answer, read once for all the children of one call.
func brief(pid int, boot time.Time) (Stat, error) { return readInfo(pid, boot, false) }

// readInfo reads pid's stat and command line, and with full its status
// (UID), exe and cwd.
func readInfo(pid int, boot time.Time, full bool) (Stat, error) {
	d, err := openProcDir(pid)
	if err != nil {
		return Stat{}, err
	}
	defer d.close()
	st, err := d.stat()
	if err != nil {
		return Stat{}, err
	}
	st.StartTime = ticksToWall(boot, st.Start)
	if full {
		if err := d.owner(&st); err != nil {
			return Stat{}, err
		}
	}
	// Last: a process that went away is caught here, where the read fails
	// instead of reading empty as exe and cwd do.
	cmdline, err := d.read("cmdline")
	if err != nil {
		return Stat{}, err
	}
	st.Cmdline = splitCmdline(cmdline)
	return st, nil
}

// owner reads st's UID, Exe and Cwd. exe and cwd are unreadable for
// zombies and kernel threads (ENOENT) and for other users' processes
// without CAP_SYS_PTRACE (EACCES): they are left empty, as documented on
// Stat.
func (d procDir) owner(st *Stat) error {
	var err error
	if st.UID, err = readParsed(d, "status", parseStatusUID); err != nil {
		return err
	}
	if target, err := d.readlink("exe"); err == nil {
		st.Exe, st.ExeDeleted = cutDeleted(target)
	} else if !linkUnreadable(err) {
		return err
	}
	if target, err := d.readlink("cwd"); err == nil {
		st.Cwd, st.CwdDeleted = cutDeleted(target)
	} else if !linkUnreadable(err) {
		return err
	}
	return nil
}

func linkUnreadable(err error) bool {
	return errors.Is(err, ErrGone) || errors.Is(err, fs.ErrPermission)
}

func startTime(pid int) (time.Time, error) {
	st, err := readLiveStat(pid)
	if err != nil {
		return time.Time{}, err
	}
	boot, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return ticksToWall(boot, st.Start), nil
}
