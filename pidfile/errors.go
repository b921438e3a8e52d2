package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Sentinels, for errors.Is. Every error about a particular file is an [*Error]
// that wraps one of them (or, for I/O failures, the underlying cause).
var (
	ErrMissing   = errors.New("pidfile: missing")
	ErrEmpty     = errors.New("pidfile: empty")
	ErrMalformed = errors.New("pidfile: malformed")
	ErrGone      = errors.New("pidfile: process is gone")
	ErrReused    = errors.New("pidfile: pid reused by another program")
	ErrRunning   = errors.New("pidfile: already running")
	ErrInsecure  = errors.New("pidfile: insecure")
	ErrSymlink   = errors.New("pidfile: is a symlink")
	// ErrNotOwner reports that the file at a [File]'s path is no longer the
	// one this process wrote: a successor replaced it, or someone removed it
	// and wrote another. [File.Remove] and [File.RenameOldbin] refuse to touch it.
	ErrNotOwner = errors.New("pidfile: replaced by another file")
)

// Error is a failure about one pid file.
//
// Its message is "pidfile: PATH: DETAIL", followed by (found "...") when
// something was read, e.g.
//
//	pidfile: /run/app.pid: malformed: not a decimal number (found "12a\n")
type Error struct {
	Path  string
	Found string // what was read, quoted in the message, or "" when nothing was
	PID   int    // the pid involved, when there is one
	Err   error  // one of the sentinels above, possibly wrapping a cause
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("pidfile: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Err != nil {
		// The sentinels carry the package prefix themselves; say it once.
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "pidfile: "))
	} else {
		b.WriteString("error")
	}
	if e.Found != "" {
		fmt.Fprintf(&b, " (found %q)", e.Found)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// maxFound bounds how much of a file an error quotes: a pid file full of
// garbage must not turn into a screenful of error message.
const maxFound = 40

// excerpt returns data for Error.Found, truncated to maxFound bytes.
func excerpt(data []byte) string {
	if len(data) <= maxFound {
		return string(data)
	}
	return string(data[:maxFound]) + "..."
}

// ioError turns an error from the os package into an *Error for path,
// dropping the *fs.PathError's repetition of the path. A missing file wraps
// both ErrMissing and fs.ErrNotExist.
func ioError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &Error{Path: path, Err: fmt.Errorf("%w (%w)", ErrMissing, fs.ErrNotExist)}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return &Error{Path: path, Err: err}
}
