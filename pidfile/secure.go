package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// CheckSecure refuses, when running as root, a pid file or directory that a
// user other than root or opts.ServiceUID owns or can write: whoever can
// write a pid file chooses which process baton signals, as root.
//
// It walks the path from "/" one component at a time, each opened relative
// to the directory before it without following symlinks (openat(2) with
// O_NOFOLLOW), and checks what it opened, like OpenSSH's StrictModes:
//
//   - each directory must be owned by root or ServiceUID, and must not be
//     writable by group or others unless it is sticky (like /tmp), where
//     only a file's owner can rename or remove it and the file's own owner
//     check applies;
//   - a symlink on the way (/var/run -> /run) is followed only when it is
//     owned by root or ServiceUID, since it lives in a directory that passed
//     the checks; its target is walked the same way;
//   - the file, if it exists, must be owned by root or ServiceUID and not be
//     writable by group or others.
//
// The error is an [*Error] wrapping [ErrInsecure] that says which check
// failed and why it matters. Running as any other user, CheckSecure returns
// nil: such a process can only signal its own processes anyway.
//
// A check by path says nothing about what a later open of the same path
// finds: readers use [Options.ReadSecure], which checks and reads the very
// descriptor it opened.
func CheckSecure(path string, opts Options) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return checkSecure(path, opts)
}

func checkSecure(path string, o Options) error {
	f, err := o.rules(true).open(path, openCheck, 0)
	if errors.Is(err, errAbsent) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// ReadSecure reads at most limit bytes of the pid file at path after the
// checks of [CheckSecure] (made whatever the euid, with baton's own euid
// allowed as an owner too), and returns them with the file's FileInfo.
// Everything is checked on the descriptors actually opened and the content
// comes from the descriptor checked, so a symlink or file swapped between
// the check and the read cannot serve another file. The file must moreover
// be a regular file with one link: a hard link is a name someone gave to a
// file without owning it. (A file renamed over or removed after it was
// opened has none and is read as it was: its whole earlier version.)
//
// Errors are [*Error] naming path, wrapping [ErrInsecure], [ErrMissing],
// or [ErrMalformed] (not a regular file, or longer than limit: then the
// FileInfo is returned too). [Read],
// [ReadLive] and [Locked] use it when running as root.
func (o Options) ReadSecure(path string, limit int64) ([]byte, fs.FileInfo, error) {
	return o.rules(true).read(path, limit)
}

// rules say what a secure open accepts.
type rules struct {
	o    Options
	euid int
	// dirs: check every directory from "/" down (as root).
	dirs bool
	// followLast: follow a trusted symlink at the last component (pid
	// files, as before); state files are never symlinks.
	followLast bool
}

func (o Options) rules(pidFile bool) rules {
	euid := os.Geteuid()
	return rules{o: o, euid: euid, dirs: euid == 0, followLast: pidFile}
}

// openCheck as the flag of rules.open: open the file only to check it
// (O_PATH), a missing one being errAbsent; directories must exist.
const openCheck = -1

// errAbsent: the last component of a path does not exist (its directory
// does). It is fs.ErrNotExist for errors.Is.
var errAbsent error = absent{}

type absent struct{}

func (absent) Error() string        { return "file does not exist" }
func (absent) Is(target error) bool { return target == fs.ErrNotExist }

// read opens path with r, checks it and reads at most limit bytes of it.
func (r rules) read(path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := r.open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readOpen(f, path, limit)
}

// allowed reports whether uid may own what baton trusts.
func (r rules) allowed(uid uint32) bool {
	return uid == 0 || uid == uint32(r.euid) || (r.o.ServiceUID > 0 && uid == uint32(r.o.ServiceUID))
}

// owners names the allowed owners for messages.
func (r rules) owners() string {
	s := "root"
	if r.euid != 0 {
		s += fmt.Sprintf(" or uid %d (baton's)", r.euid)
	}
	if r.o.ServiceUID > 0 && r.o.ServiceUID != r.euid {
		s += fmt.Sprintf(" or the service user (uid %d)", r.o.ServiceUID)
	}
	return s
}

// insecure is the error for path when what (a directory, symlink or file
// named by its real path) fails a check.
func insecure(path, why, who string) error {
	return &Error{Path: path, Err: fmt.Errorf("%w: %s; %s could make baton signal any process", ErrInsecure, why, who)}
}

// inode is what the checks need of a stat(2).
type inode struct {
	mode  fs.FileMode // type and permission bits, as fs.FileMode
	uid   uint32
	nlink uint64
}

// checkDir checks a directory on the way to path.
func (r rules) checkDir(path, dir string, st inode) error {
	if !r.allowed(st.uid) {
		return insecure(path, fmt.Sprintf("directory %s is owned by uid %d, not %s", dir, st.uid, r.owners()), "that user")
	}
	if st.mode.Perm()&0o022 != 0 && st.mode&fs.ModeSticky == 0 {
		return insecure(path, fmt.Sprintf("directory %s is writable by other users (mode %04o)", dir, st.mode.Perm()), "anyone")
	}
	return nil
}

// checkFile checks the file at the end of path, opened as real. A file
// opened only for checking (CheckSecure) is not held to be regular and
// singly linked: Create and RestoreOldbin replace it rather than read it.
func (r rules) checkFile(path, real string, st inode, reading bool) error {
	if reading && !st.mode.IsRegular() {
		return &Error{Path: path, Err: fmt.Errorf("%w: not a regular file (%s)", ErrMalformed, st.mode.Type())}
	}
	if !r.allowed(st.uid) {
		return insecure(path, fmt.Sprintf("file %s is owned by uid %d, not %s", real, st.uid, r.owners()), "that user")
	}
	if st.mode.Perm()&0o022 != 0 {
		return insecure(path, fmt.Sprintf("file %s is writable by other users (mode %04o)", real, st.mode.Perm()), "anyone")
	}
	// No link at all: the file was replaced (WriteState renames a new one
	// over it) or removed after it was opened. What is read is then the
	// whole earlier version, as a read a moment earlier would have had it;
	// a file nobody can name is nobody's hard link. (Refusing it made a
	// reader racing an atomic write fail as if attacked.)
	if reading && st.nlink > 1 {
		return insecure(path, fmt.Sprintf("file %s has %d hard links", real, st.nlink), "whoever linked it")
	}
	return nil
}
