package pidfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// File is a pid file written and locked by this process. Its methods are
// safe for concurrent use. The lock is held until [File.Close] or the
// process's exit, whichever comes first, even if the File itself is no
// longer referenced; [File.Remove] does not release it. The descriptor is
// close-on-exec: children, workers and a re-executed successor do not
// inherit the lock.
type File struct {
	mu   sync.Mutex
	path string   // where the file is now
	orig string   // the path given to Create
	pid  int      // what was written
	key  fileKey  // the inode written, to recognise it after renames
	lock *os.File // holds the flock; nil after Close
}

// Create writes pid to path atomically and holds an exclusive lock on it
// until Close. A live owner of path fails with ErrRunning naming its pid.
//
// The pid and a newline go to a temporary file in path's directory, with
// mode 0644 whatever the umask; the file is fsynced and flocked before it
// is renamed over path (or, when path does not exist yet, renamed with
// RENAME_NOREPLACE, which fails instead of clobbering a rival that got there
// first), and the
// directory is fsynced. Readers see the old file or the complete new one.
//
// An existing file at path is replaced only if nobody holds its lock: a
// locked one fails with an [*Error] wrapping [ErrRunning] whose message says
// "already running as pid N". Create refuses a symlink at path
// ([ErrSymlink]) and, running as root, an insecure location ([CheckSecure]
// with opts).
func Create(path string, pid int, opts Options) (*File, error) {
	if err := unsupported(); err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	if pid <= 1 || pid > pidMax() {
		return nil, &Error{Path: path, PID: pid, Err: fmt.Errorf("%w: pid %d out of range 2..%d", ErrMalformed, pid, pidMax())}
	}
	if err := refuseSymlink(path); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := checkSecure(path, opts); err != nil {
			return nil, err
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, ioError(path, err)
	}
	ok := false
	defer discard(tmp, &ok)
	// Chmod is fchmod(2): unlike the mode given to open(2), the umask does
	// not apply.
	if err := tmp.Chmod(0o644); err != nil {
		return nil, ioError(path, err)
	}
	if _, err := io.WriteString(tmp, strconv.Itoa(pid)+"\n"); err != nil {
		return nil, ioError(path, err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, ioError(path, err)
	}
	// Lock before the file has a public name, so it is never visible
	// unlocked: a rival Create cannot mistake it for a stale file.
	if err := tryLock(tmp); err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	fi, err := tmp.Stat()
	if err != nil {
		return nil, ioError(path, err)
	}
	key, _ := keyOf(fi)
	if err := install(tmp.Name(), path, nil); err != nil {
		return nil, err
	}
	if err := syncDir(path); err != nil {
		os.Remove(path) // ours: we hold its lock, nobody can have replaced it
		return nil, err
	}
	ok = true
	held.Store(tmp, struct{}{})
	return &File{path: path, orig: path, pid: pid, key: key, lock: tmp}, nil
}

// held keeps the lock descriptor of every open File reachable: an *os.File
// closes its descriptor when garbage collected, which would silently drop
// the lock of a master that kept no reference to its File.
var held sync.Map

// Path is where the file is now (it moves with RenameOldbin and Restore).
func (f *File) Path() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.path
}

// PID is the pid written.
func (f *File) PID() int { return f.pid }

// RenameOldbin renames the file to OldbinPath of its original path, as an
// nginx-style master does on USR2 before it execs its successor. The lock
// moves with the file. It fails with [ErrNotOwner] when the file at Path is
// no longer this one, and with [ErrRunning] when the .oldbin path holds a
// file another live master has locked.
func (f *File) RenameOldbin() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	oldbin := OldbinPath(f.orig)
	if f.path == oldbin {
		return &Error{Path: f.path, PID: f.pid, Err: errors.New("already renamed to .oldbin")}
	}
	if err := f.owned(); err != nil {
		return err
	}
	if err := install(f.path, oldbin, nil); err != nil {
		return err
	}
	f.path = oldbin
	return syncDir(oldbin)
}

// Restore renames <path>.oldbin back to path, refusing to clobber a pid file
// that a live master holds. It is RestoreWith(nil).
func (f *File) Restore() error { return f.RestoreWith(nil) }

// RestoreWith renames the file from <path>.oldbin back to its original path,
// as a master does when its successor failed. It refuses, with an [*Error]
// wrapping [ErrRunning], to replace a file at path that is locked or whose
// pid probe says is alive and no younger than the file (see
// [Options.ReadLive]); a nil probe reads /proc, counting zombies as gone. A
// file at path that does not parse names no process and is replaced.
func (f *File) RestoreWith(probe Probe) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == f.orig {
		return &Error{Path: f.path, PID: f.pid, Err: errors.New("not renamed to .oldbin")}
	}
	// Someone else (an orchestrator's rollback) may rename this very file
	// back before or while this does: link(2) to the pid file then unlink
	// .oldbin, on either side, interleaved. Whenever the inode at the
	// original path is ours, the file is restored, whoever finished it.
	if err := f.owned(); err != nil {
		if f.backAtOrig() {
			return nil
		}
		return err
	}
	if err := install(f.path, f.orig, refuseLive(probe)); err != nil {
		if f.backAtOrig() {
			return nil
		}
		return err
	}
	f.path = f.orig
	return syncDir(f.orig)
}

// backAtOrig reports whether the inode at the original path is this
// file's, and then takes that path as the file's; callers hold mu.
func (f *File) backAtOrig() bool {
	fi, err := os.Lstat(f.orig)
	if err != nil {
		return false
	}
	if key, _ := keyOf(fi); key != f.key {
		return false
	}
	f.path = f.orig
	return true
}

// Remove removes the file only if the inode at Path is still this file's,
// so a master never deletes its successor's pid file; otherwise it fails
// with [ErrNotOwner] (or [ErrMissing]) and removes nothing. The lock stays
// held until Close. Successors written by this package cannot replace a
// locked file, so there is no window between the check and the unlink.
func (f *File) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.owned(); err != nil {
		return err
	}
	if err := os.Remove(f.path); err != nil {
		return ioError(f.path, err)
	}
	return syncDir(f.path)
}

// Close releases the lock and leaves the file in place. A second call is a no-op.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock == nil {
		return nil
	}
	// Closing the only descriptor of the open file description releases
	// the flock (flock(2)); the name is a random temporary one by now, so
	// errors name the pid file instead.
	err := f.lock.Close()
	held.Delete(f.lock)
	f.lock = nil
	if err != nil {
		return ioError(f.path, err)
	}
	return nil
}

// owned returns nil when the file at f.path is the inode f wrote.
func (f *File) owned() error {
	fi, err := os.Lstat(f.path)
	if err != nil {
		return ioError(f.path, err)
	}
	if key, _ := keyOf(fi); key != f.key {
		return &Error{Path: f.path, PID: f.pid, Err: ErrNotOwner}
	}
	return nil
}

// RestoreOldbin renames path.oldbin to path for a master that does not use
// this package (nginx, unicorn), refusing when path names a live process.
// See [Options.RestoreOldbin]; it applies the zero Options' security checks.
func RestoreOldbin(path string, probe Probe) error { return Options{}.RestoreOldbin(path, probe) }

// RestoreOldbin renames path.oldbin back to path, as a rollback does for a
// master that does not use this package (nginx, unicorn). The .oldbin must
// exist ([ErrMissing] otherwise), not be a symlink, and parse. A file at path
// is replaced only when it is not locked and the pid it names is gone or
// reused according to probe (nil: read /proc); otherwise the error wraps
// [ErrRunning]. Running as root, both paths must pass [CheckSecure] with o.
func (o Options) RestoreOldbin(path string, probe Probe) error {
	oldbin := OldbinPath(path)
	if err := refuseSymlink(oldbin); err != nil {
		return err
	}
	if err := refuseSymlink(path); err != nil {
		return err
	}
	if _, err := o.Read(oldbin); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := checkSecure(path, o); err != nil {
			return err
		}
	}
	if err := install(oldbin, path, refuseLive(probe)); err != nil {
		return err
	}
	return syncDir(path)
}

// refuseLive returns an install vet that refuses to replace a file naming
// a process that probe says runs and is no younger than the file.
func refuseLive(probe Probe) func(string, *os.File) error {
	if probe == nil {
		probe = procStart
	}
	return func(path string, cur *os.File) error {
		data, err := io.ReadAll(io.LimitReader(cur, maxSize))
		if err != nil {
			return ioError(path, err)
		}
		pid, err := Parse(data)
		if err != nil {
			return nil // names no process
		}
		fi, err := cur.Stat()
		if err != nil {
			return ioError(path, err)
		}
		err = checkLive(path, pid, fi.ModTime(), probe)
		if errors.Is(err, ErrGone) || errors.Is(err, ErrReused) {
			return nil
		}
		if err != nil {
			return err
		}
		return &Error{Path: path, PID: pid, Err: fmt.Errorf("%w as pid %d", ErrRunning, pid)}
	}
}

// maxAttempts bounds install's retries when the file at dst keeps changing
// under it: each retry means a rival won a race, which cannot go on long.
const maxAttempts = 16

// install moves src (a file this process wrote, or an .oldbin) to dst
// without clobbering a live master's file:
//
//   - when dst does not exist, renameat2(2) with RENAME_NOREPLACE moves
//     src there (failing if a rival created it meanwhile), so the file
//     never has two links, which secure readers refuse;
//   - when it exists, install takes its flock without waiting (a held lock
//     means a live owner: ErrRunning), checks that dst still names the inode
//     it locked (else it retries), runs vet on it, and renames src over it
//     while holding the lock, so that no other writer using this package
//     can slip in between the check and the rename.
//
// A symlink at dst is refused, never followed.
func install(src, dst string, vet func(string, *os.File) error) error {
	for range maxAttempts {
		cur, err := os.OpenFile(dst, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err := renameNoReplace(src, dst)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				return ioError(dst, err)
			}
			return nil
		case errors.Is(err, syscall.ELOOP):
			return &Error{Path: dst, Err: ErrSymlink}
		case err != nil:
			return ioError(dst, err)
		}
		if fi, err := cur.Stat(); err != nil || !fi.Mode().IsRegular() {
			cur.Close()
			if err != nil {
				return ioError(dst, err)
			}
			return &Error{Path: dst, Err: fmt.Errorf("%w: not a regular file (%s)", ErrMalformed, fi.Mode().Type())}
		}
		err = tryLock(cur)
		if errors.Is(err, errWouldBlock) {
			err = running(dst, cur)
			cur.Close()
			return err
		}
		if err != nil {
			cur.Close()
			return &Error{Path: dst, Err: err}
		}
		if !sameFile(cur, dst) {
			cur.Close() // lost a race; look again
			continue
		}
		if vet != nil {
			if err := vet(dst, cur); err != nil {
				cur.Close()
				return err
			}
		}
		err = os.Rename(src, dst)
		cur.Close()
		if err != nil {
			return ioError(dst, err)
		}
		return nil
	}
	return &Error{Path: dst, Err: fmt.Errorf("the file kept changing during %d attempts to replace it", maxAttempts)}
}

// running builds the ErrRunning error for a locked file cur at path, naming
// the pid written in it or, failing that, the lock holder's.
func running(path string, cur *os.File) error {
	data, _ := io.ReadAll(io.LimitReader(cur, maxSize))
	pid, err := Parse(data)
	if err != nil {
		if fi, err := cur.Stat(); err == nil {
			key, _ := keyOf(fi)
			pid, _, _ = lockHolder(key)
		}
	}
	if pid <= 0 {
		return &Error{Path: path, Found: excerpt(data), Err: fmt.Errorf("%w (pid unknown: the file is locked)", ErrRunning)}
	}
	return &Error{Path: path, PID: pid, Err: fmt.Errorf("%w as pid %d", ErrRunning, pid)}
}

// sameFile reports whether path names the inode open as f.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	if err != nil {
		return false
	}
	ka, _ := keyOf(a)
	kb, _ := keyOf(b)
	return ka == kb
}

// refuseSymlink fails with ErrSymlink when path is a symbolic link.
func refuseSymlink(path string) error {
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return &Error{Path: path, Err: ErrSymlink}
	}
	return nil
}

// syncDir fsyncs the directory holding path, so that a rename or link is
// durable: without it a crash can bring back the old directory entry.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return ioError(path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return &Error{Path: path, Err: fmt.Errorf("fsync directory: %w", err)}
	}
	return nil
}

// OldbinPath returns path + ".oldbin".
func OldbinPath(path string) string { return path + ".oldbin" }

// discard closes and removes the temporary file f unless *kept: a write
// that failed half-way leaves nothing behind.
func discard(f *os.File, kept *bool) {
	if !*kept {
		f.Close()
		os.Remove(f.Name())
	}
}
