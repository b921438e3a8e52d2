package pidfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Probe reports when pid started; its error wraps fs.ErrNotExist (or
// os.ErrProcessDone, or syscall.ESRCH) when the process no longer runs.
// procs.StartTime fits. Any other error is passed on as it is.
type Probe func(pid int) (time.Time, error)

// Options configures [Create] and the security checks. The zero value allows
// only root to own the pid file and its directories when running as root, and
// writes mode 0644.
type Options struct {
	// ServiceUID is a uid besides root that may own the pid file and its
	// directories. Zero means root only.
	ServiceUID int
}

// ReuseTolerance is how much later than its pid file's modification time a
// process may appear to have started before [ReadLive] calls its pid reused.
//
// A process's start time is kept in clock ticks since boot (USER_HZ, 10ms)
// and turned into wall time with the boot time, which /proc/stat gives in
// whole seconds, so a start time read through /proc can be up to a second
// late; a file's mtime is truncated to the filesystem's granularity the other
// way. A master always writes its pid file after it started, so the
// tolerance only ever excuses a genuine owner, never a recycled pid that is
// more than a second younger than the file.
const ReuseTolerance = time.Second

// maxSize bounds how much of a pid file is read: a valid one holds at most
// seven digits and a newline.
const maxSize = 4096

// Read reads and parses path; see [Options.Read]. It applies the zero
// [Options]' security checks.
func Read(path string) (int, error) { return Options{}.Read(path) }

// ReadLive reads path and checks that the pid runs and started no later than
// the file was written (else ErrReused); see [Options.ReadLive]. It applies
// the zero [Options]' security checks.
func ReadLive(path string, probe Probe) (int, error) { return Options{}.ReadLive(path, probe) }

// Read reads and parses path with [Parse]. Errors are [*Error] naming path,
// wrapping [ErrMissing] (and fs.ErrNotExist), [ErrEmpty], [ErrMalformed]
// (also for a path that is not a regular file, or is longer than any pid
// file), or, running as root, [ErrInsecure]: the file is read through
// [Options.ReadSecure] with o, which checks the descriptors it opens (and
// refuses a hard link too) and parses what it read from the one checked.
func (o Options) Read(path string) (int, error) {
	_, pid, err := o.load(path)
	return pid, err
}

// ReadLive reads path like [Options.Read] and asks probe about the pid. It
// fails with [ErrGone] when probe says the process no longer runs, and with
// [ErrReused] when the process started more than [ReuseTolerance] after the
// file was last written: the master that wrote the file is gone and the
// kernel gave its pid to another program, which must not be signalled.
// Other probe errors are returned wrapped in an [*Error]. A nil probe reads
// /proc/PID/stat, counting a zombie as gone.
func (o Options) ReadLive(path string, probe Probe) (int, error) {
	fi, pid, err := o.load(path)
	if err != nil {
		return 0, err
	}
	if err := checkLive(path, pid, fi.ModTime(), probe); err != nil {
		return 0, err
	}
	return pid, nil
}

// checkLive returns nil when pid runs and started no later than written
// (plus ReuseTolerance), else an *Error wrapping ErrGone or ErrReused or the
// probe's own error.
func checkLive(path string, pid int, written time.Time, probe Probe) error {
	if probe == nil {
		probe = procStart
	}
	started, err := probe(pid)
	switch {
	case isGone(err):
		return &Error{Path: path, PID: pid, Err: fmt.Errorf("%w: pid %d: %w", ErrGone, pid, err)}
	case err != nil:
		return &Error{Path: path, PID: pid, Err: fmt.Errorf("pid %d: %w", pid, err)}
	case started.After(written.Add(ReuseTolerance)):
		return &Error{Path: path, PID: pid, Err: fmt.Errorf("%w: pid %d started at %s, after the file was written at %s",
			ErrReused, pid, started.Format(time.RFC3339Nano), written.Format(time.RFC3339Nano))}
	}
	return nil
}

// isGone reports whether a Probe error means the process no longer runs.
func isGone(err error) bool {
	return err != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH))
}

// load reads path and parses it: running as root through
// [Options.ReadSecure], which checks the descriptors it opens and reads,
// else plainly. It returns the file's FileInfo whenever the file could be
// read, with the pid or the parse error; a nil FileInfo and the error when
// it could not.
func (o Options) load(path string) (fs.FileInfo, int, error) {
	read := readPlain
	if os.Geteuid() == 0 {
		read = o.ReadSecure
	}
	data, fi, err := read(path, maxSize)
	if err != nil {
		return fi, 0, err
	}
	pid, err := Parse(data)
	if e := (*Error)(nil); errors.As(err, &e) {
		e.Path = path
		return fi, 0, e
	}
	return fi, pid, nil
}

// readPlain reads at most limit bytes of the regular file at path, for a
// process that is not root: it can only signal its own processes anyway.
func readPlain(path string, limit int64) ([]byte, fs.FileInfo, error) {
	// O_NONBLOCK: opening a FIFO planted at path must not hang the reader.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, ioError(path, err)
	}
	defer f.Close()
	return readOpen(f, path, limit)
}

// readOpen reads at most limit bytes of f, opened at path, which must be a
// regular file.
func readOpen(f *os.File, path string, limit int64) ([]byte, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, ioError(path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, &Error{Path: path, Err: fmt.Errorf("%w: not a regular file (%s)", ErrMalformed, fi.Mode().Type())}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, ioError(path, err)
	}
	if int64(len(data)) > limit {
		return nil, fi, &Error{Path: path, Found: excerpt(data), Err: fmt.Errorf("%w: longer than %d bytes", ErrMalformed, limit)}
	}
	return data, fi, nil
}
