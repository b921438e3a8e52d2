package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CheckSecure refuses, when running as root, a pid file or directory that a
// user other than root or opts.ServiceUID owns or can write: whoever can
// write a pid file chooses which process baton signals, as root.
//
// It resolves symlinks and checks the file itself (if it exists) and every
// directory from its parent up to "/", like OpenSSH's StrictModes:
//
//   - the file must be owned by root or ServiceUID and not be writable by
//     group or others;
//   - each directory must be owned by root or ServiceUID, and must not be
//     writable by group or others unless it is sticky (like /tmp), where
//     only a file's owner can rename or remove it and the file's own owner
//     check above applies.
//
// The error is an [*Error] wrapping [ErrInsecure] that says which check
// failed and why it matters. Running as any other user, CheckSecure returns
// nil: such a process can only signal its own processes anyway.
func CheckSecure(path string, opts Options) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return checkSecure(path, opts)
}

func checkSecure(path string, o Options) error {
	if err := unsupported(); err != nil {
		return &Error{Path: path, Err: err}
	}
	insecure := func(why, who string) error {
		return &Error{Path: path, Err: fmt.Errorf("%w: %s; %s could make baton signal any process", ErrInsecure, why, who)}
	}
	allowed := func(uid uint32) bool {
		return uid == 0 || (o.ServiceUID > 0 && uid == uint32(o.ServiceUID))
	}
	owners := "root"
	if o.ServiceUID > 0 {
		owners = fmt.Sprintf("root or the service user (uid %d)", o.ServiceUID)
	}

	target, err := filepath.Abs(path)
	if err != nil {
		return &Error{Path: path, Err: err}
	}
	fi, err := os.Lstat(target)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// Check what a reader would really open, and where it lives.
		if target, err = filepath.EvalSymlinks(target); err != nil {
			return ioError(path, err)
		}
		fi, err = os.Lstat(target)
	}
	switch {
	case err == nil:
		if _, uid := keyOf(fi); !allowed(uid) {
			return insecure(fmt.Sprintf("file %s is owned by uid %d, not %s", target, uid, owners), "that user")
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return insecure(fmt.Sprintf("file %s is writable by other users (mode %04o)", target, fi.Mode().Perm()), "anyone")
		}
	case !errors.Is(err, fs.ErrNotExist):
		return ioError(path, err)
	}

	dir, err := filepath.EvalSymlinks(filepath.Dir(target))
	if err != nil {
		return ioError(path, err)
	}
	for {
		di, err := os.Stat(dir)
		if err != nil {
			return ioError(path, err)
		}
		if _, uid := keyOf(di); !allowed(uid) {
			return insecure(fmt.Sprintf("directory %s is owned by uid %d, not %s", dir, uid, owners), "that user")
		}
		if di.Mode().Perm()&0o022 != 0 && di.Mode()&fs.ModeSticky == 0 {
			return insecure(fmt.Sprintf("directory %s is writable by other users (mode %04o)", dir, di.Mode().Perm()), "anyone")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}
