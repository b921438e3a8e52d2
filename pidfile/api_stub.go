package pidfile

// This file is the agreed API of package pidfile. The bodies are placeholders
// until the implementation lands; signatures change only by agreement.

import (
	"errors"
	"fmt"
	"time"
)

var (
	ErrMissing   = errors.New("pidfile: missing")
	ErrEmpty     = errors.New("pidfile: empty")
	ErrMalformed = errors.New("pidfile: malformed")
	ErrGone      = errors.New("pidfile: process is gone")
	ErrReused    = errors.New("pidfile: pid reused by another program")
	ErrRunning   = errors.New("pidfile: already running")
	ErrInsecure  = errors.New("pidfile: insecure")
	ErrSymlink   = errors.New("pidfile: is a symlink")
)

// Error is a failure about one pid file.
type Error struct {
	Path  string
	Found string // what was read, quoted in the message, or "" when nothing was
	PID   int    // the pid involved, when there is one
	Err   error  // one of the sentinels above, possibly wrapping a cause
}

func (e *Error) Error() string { return fmt.Sprintf("pidfile: %s: %v", e.Path, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Probe reports when pid started; its error wraps fs.ErrNotExist or a
// "gone" sentinel when the process no longer runs. procs.StartTime fits.
type Probe func(pid int) (time.Time, error)

// Options configures Create and the security checks. The zero value allows
// only root to own the pid file and its directory when running as root, and
// writes mode 0644.
type Options struct {
	// ServiceUID is a uid besides root that may own the pid file and its
	// directory. Zero means root only.
	ServiceUID int
}

// Parse parses the content of a pid file strictly.
func Parse(data []byte) (int, error) { return 0, errors.ErrUnsupported }

// Read reads and parses path.
func Read(path string) (int, error) { return 0, errors.ErrUnsupported }

// ReadLive reads path and checks that the pid runs and started no later than
// the file was written (else ErrReused).
func ReadLive(path string, probe Probe) (int, error) { return 0, errors.ErrUnsupported }

// Locked reports whether some process holds the flock on the file at path,
// without taking the lock; pid is the pid written in the file.
func Locked(path string) (pid int, locked bool, err error) { return 0, false, errors.ErrUnsupported }

// CheckSecure refuses, when running as root, a pid file or directory that a
// user other than root or opts.ServiceUID owns or can write.
func CheckSecure(path string, opts Options) error { return errors.ErrUnsupported }

// OldbinPath returns path + ".oldbin".
func OldbinPath(path string) string { return path + ".oldbin" }

// File is a pid file written and locked by this process.
type File struct {
	path string
	pid  int
}

// Create writes pid to path atomically and holds an exclusive lock on it
// until Close. A live owner of path fails with ErrRunning naming its pid.
func Create(path string, pid int, opts Options) (*File, error) { return nil, errors.ErrUnsupported }

// Path is where the file is now (it moves with RenameOldbin and Restore).
func (f *File) Path() string { return f.path }

// PID is the pid written.
func (f *File) PID() int { return f.pid }

// RenameOldbin renames the file to OldbinPath of its original path.
func (f *File) RenameOldbin() error { return errors.ErrUnsupported }

// Restore renames <path>.oldbin back to path, refusing to clobber a pid file
// that a live master holds.
func (f *File) Restore() error { return errors.ErrUnsupported }

// Remove removes the file only if the inode at Path is still this file's.
func (f *File) Remove() error { return errors.ErrUnsupported }

// Close releases the lock and leaves the file in place. A second call is a no-op.
func (f *File) Close() error { return nil }

// RestoreOldbin renames path.oldbin to path for a master that does not use
// this package (nginx, unicorn), refusing when path names a live process.
func RestoreOldbin(path string, probe Probe) error { return errors.ErrUnsupported }
