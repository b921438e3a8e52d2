// Package pidfile reads, writes, locks and renames the pid files through which
// operators, init scripts and baton find a master.
//
// # Writing
//
// [Create] writes the pid to a temporary file in the same directory, fsyncs it,
// takes an exclusive flock(2) on it and renames it over the target, so a reader
// sees either the old file or the complete new one, never a partial write. The
// lock belongs to the inode, not the path: when the master later renames its pid
// file to <path>.oldbin during an upgrade, the lock travels with it, and
// [Locked] keeps telling a live owner from a stale file without taking the lock.
//
// # Reading
//
// [Read] parses strictly: decimal digits, an optional trailing newline or
// spaces, and 1 < pid <= the kernel's pid_max. Every failure is an [*Error]
// naming the file and what was found, wrapping one of the sentinels
// ([ErrMissing], [ErrEmpty], [ErrMalformed], [ErrGone], [ErrReused],
// [ErrInsecure], ...), so callers can branch with errors.Is.
//
// # Security
//
// A pid file is an instruction to signal a process. When baton runs as root, a
// pid file that another user can write, or that lives in a directory another
// user can write, would let that user make baton signal any process on the
// machine; such files are refused with an error that says why.
package pidfile
