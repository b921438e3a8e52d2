package pidfile

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Locked reports whether some process holds a flock(2) on the file at path,
// without taking the lock, and returns the pid written in the file. It
// applies the zero [Options]' security checks; see [Options.Locked].
func Locked(path string) (pid int, locked bool, err error) { return Options{}.Locked(path) }

// Locked reports whether some process holds a flock(2) on the file at path,
// without taking the lock, and returns the pid written in the file.
//
// It matches the file's device and inode against the FLOCK entries of
// /proc/locks, so a concurrent [Create] never sees its probe as a rival
// holder. A lock dies with the last descriptor of its open file description,
// so a killed master's file reads as unlocked at once, even when its
// successor has not yet written anything.
//
// When the file is locked but its content does not parse, locked is true,
// pid is 0 and err says why. Running as root, the file and its directories
// must pass [CheckSecure] with o first.
func (o Options) Locked(path string) (pid int, locked bool, err error) {
	if err := unsupported(); err != nil {
		return 0, false, &Error{Path: path, Err: err}
	}
	fi, pid, perr := o.load(path)
	if fi == nil {
		return 0, false, perr
	}
	key, _ := keyOf(fi)
	_, locked, err = lockHolder(key)
	if err != nil {
		return 0, false, &Error{Path: path, Err: err}
	}
	if perr != nil {
		return 0, locked, perr
	}
	return pid, locked, nil
}

// lockHolder returns the pid that holds a flock on the inode key, from
// /proc/locks. The pid is the process that took the lock; it may be 0 or -1
// when that process is outside our pid namespace.
func lockHolder(key fileKey) (pid int, locked bool, err error) {
	data, err := os.ReadFile(procLocks)
	if err != nil {
		return 0, false, fmt.Errorf("reading locks: %w", err)
	}
	for _, l := range parseLocks(data) {
		if l.kind == "FLOCK" && !l.waiter && l.major == key.major() && l.minor == key.minor() && l.ino == key.ino {
			return l.pid, true, nil
		}
	}
	return 0, false, nil
}

// lockEntry is one line of /proc/locks, as printed by lock_get_status in
// fs/locks.c:
//
//	1: FLOCK  ADVISORY  WRITE 1234 08:01:1317 0 EOF
//	1: -> FLOCK  ADVISORY  WRITE 1240 08:01:1317 0 EOF   (a blocked waiter)
//
// The device is MAJOR:MINOR in hex, the inode in decimal.
type lockEntry struct {
	kind   string // FLOCK, POSIX, OFDLCK, LEASE, ...
	waiter bool   // "->": blocked on the lock, not holding it
	pid    int
	major  uint64
	minor  uint64
	ino    uint64
}

// parseLocks parses /proc/locks, skipping lines it does not understand (a
// future kernel's new lock kind must not make every pid file look unlocked
// or break Locked).
func parseLocks(data []byte) []lockEntry {
	var out []lockEntry
	for line := range bytes.Lines(data) {
		f := strings.Fields(string(line))
		if len(f) < 2 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		f = f[1:]
		var e lockEntry
		if f[0] == "->" {
			e.waiter = true
			f = f[1:]
		}
		// KIND MANDATORY/ADVISORY READ/WRITE PID MAJ:MIN:INO START END
		if len(f) < 5 {
			continue
		}
		e.kind = f[0]
		pid, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		e.pid = pid
		parts := strings.Split(f[4], ":")
		if len(parts) != 3 {
			continue
		}
		var errs [3]error
		e.major, errs[0] = strconv.ParseUint(parts[0], 16, 32)
		e.minor, errs[1] = strconv.ParseUint(parts[1], 16, 32)
		e.ino, errs[2] = strconv.ParseUint(parts[2], 10, 64)
		if errs[0] != nil || errs[1] != nil || errs[2] != nil {
			continue
		}
		out = append(out, e)
	}
	return out
}
