package pidfile

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ReadState reads at most limit bytes of a file that baton or a master it
// drives writes beside a pid file — the upgrade journal, the orchestrator
// lock, a baton master's status file — refusing what another user could
// have written or planted, whatever baton's euid:
//
//   - a symlink at path ([ErrSymlink]; opened with O_NOFOLLOW);
//   - a file owned by anyone but root, baton's euid or o.ServiceUID, or
//     writable by group or others, or with more than one hard link
//     ([ErrInsecure]);
//   - anything but a regular file, such as a FIFO (opened without blocking),
//     or a file longer than limit ([ErrMalformed]).
//
// Running as root, every directory on the way is checked as by
// [CheckSecure]. A missing file is an [*Error] wrapping [ErrMissing] and
// fs.ErrNotExist. The status reader should call it as
// o.ReadState(path, MaxStateSize).
func (o Options) ReadState(path string, limit int64) ([]byte, fs.FileInfo, error) {
	return o.rules(false).read(path, limit)
}

// MaxStateSize is a sensible limit for [Options.ReadState]: a journal or a
// status file is a few kilobytes.
const MaxStateSize = 1 << 20

// OpenState opens a state file like [Options.ReadState] does, with flag
// (os.O_RDWR|os.O_CREATE, say; O_NOFOLLOW and O_NONBLOCK are added, and
// O_TRUNC is refused: nothing is changed before the checks) and, when it
// creates the file, perm. The file is checked before it is returned; the
// caller closes it.
func (o Options) OpenState(path string, flag int, perm fs.FileMode) (*os.File, error) {
	if flag&os.O_TRUNC != 0 {
		return nil, &Error{Path: path, Err: errors.New("O_TRUNC would change the file before it is checked")}
	}
	return o.rules(false).open(path, flag, perm)
}

// staleTemp is how old a temporary file of [Options.WriteState] must be
// before a later write removes it: a write takes milliseconds, so one that
// old was left by a writer killed between create and rename.
const staleTemp = time.Minute

// WriteState writes data to path atomically: to a new temporary file
// ".BASE.tmpN" in path's directory, created with O_EXCL|O_NOFOLLOW (so
// never through a symlink planted at that name) and mode 0644 whatever the
// umask, then renamed over path. The rename replaces whatever path names —
// a symlink, a hard link, a FIFO — and never writes through it. It does not
// fsync: state files describe running processes, which a power loss ends
// too. Running as root, the directories are checked as by [CheckSecure].
//
// Temporary files of path's that a killed writer left behind, owned by
// baton's euid and older than a minute, are removed first.
func (o Options) WriteState(path string, data []byte) error {
	removeStaleTemps(path)
	prefix := "." + filepath.Base(path) + ".tmp"
	var (
		f   *os.File
		err error
	)
	for range 100 {
		tmp := filepath.Join(filepath.Dir(path), prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		f, err = o.OpenState(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	ok := false
	defer discard(f, &ok)
	// Chmod is fchmod(2): the umask does not apply.
	if err := f.Chmod(0o644); err != nil {
		return ioError(path, err)
	}
	if _, err := f.Write(data); err != nil {
		return ioError(path, err)
	}
	if err := f.Close(); err != nil {
		return ioError(path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return ioError(path, err)
	}
	ok = true
	return nil
}

// RemoveTemps removes the temporary files [Options.WriteState] left for
// path when its writer was killed between create and rename: the regular
// files ".BASE.tmpN" beside path that baton's euid owns, whatever their
// age. Only a caller that knows no write of path is under way may call it:
// one holding the lock that every writer of path takes (the orchestrator's
// lock, for the upgrade journal). WriteState itself removes only those
// older than a minute. It never follows a symlink (Lstat, and unlink(2)
// removes the name only), leaves other users' files alone and returns how
// many it removed.
func RemoveTemps(path string) int { return removeTemps(path, 0) }

// removeStaleTemps removes path's temporary files older than staleTemp
// that baton's euid owns.
func removeStaleTemps(path string) { removeTemps(path, staleTemp) }

// removeTemps removes path's temporary files at least minAge old that
// baton's euid owns, and returns how many.
func removeTemps(path string, minAge time.Duration) int {
	prefix := "." + filepath.Base(path) + ".tmp"
	names, _ := filepath.Glob(filepath.Join(filepath.Dir(path), globEscape(prefix)+"*"))
	n := 0
	for _, name := range names {
		suffix := strings.TrimPrefix(filepath.Base(name), prefix)
		if suffix == "" || strings.Trim(suffix, "0123456789") != "" {
			continue // not a name WriteState gives
		}
		fi, err := os.Lstat(name)
		if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < minAge {
			continue
		}
		if _, uid := keyOf(fi); int(uid) == os.Geteuid() && os.Remove(name) == nil {
			n++
		}
	}
	return n
}

// globEscape quotes the metacharacters of filepath.Match in s.
func globEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}
