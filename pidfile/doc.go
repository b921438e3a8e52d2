// Package pidfile reads, writes, locks and renames the pid files through which
// operators, init scripts and baton find a master.
//
// It is a leaf: it imports only the standard library and golang.org/x/sys,
// so that procs, upgrade and cmd/baton can all depend on it. It works on
// Linux; elsewhere the operations that need flock(2), openat(2) and /proc
// fail with errors.ErrUnsupported.
//
// # Writing
//
// [Create] writes the pid to a temporary file in the same directory (mode
// 0644 whatever the umask), fsyncs it, takes an exclusive flock(2) on it and
// only then gives it the public name: rename(2) over a stale file, or
// renameat2(2) with RENAME_NOREPLACE when there is none (which fails instead
// of clobbering a rival that got there first), then fsyncs the directory. A reader sees either the old file
// or the complete new one, never a partial write, and the new file is never
// visible unlocked.
//
// The lock belongs to the inode, not the path: when the master later renames
// its pid file to <path>.oldbin during an upgrade ([File.RenameOldbin]), the
// lock travels with it, and [Locked] keeps telling a live owner from a stale
// file without taking the lock. The lock lives until [File.Close] or the
// process's death; the descriptor is close-on-exec, so workers, helpers and
// the re-executed successor never inherit it and a dead master's file is
// unlocked at once.
//
// An existing file is replaced only after taking its lock without waiting
// (a held lock means a live master: [ErrRunning], "already running as pid
// N") and checking that the path still names the inode locked; the
// replacement happens while that lock is held. No two writers using this
// package can both believe they own a path. The same protocol guards
// [File.RenameOldbin], [File.Restore] and [RestoreOldbin].
//
// # Reading
//
// [Read] parses strictly: decimal digits without sign or leading zero, an
// optional trailing newline or spaces, and 1 < pid <= the kernel's pid_max
// ([PIDMax]). Every failure is an [*Error] naming the file and quoting (a
// bounded excerpt of) what was found, wrapping one of the sentinels
// ([ErrMissing], [ErrEmpty], [ErrMalformed], [ErrGone], [ErrReused],
// [ErrRunning], [ErrInsecure], [ErrSymlink], [ErrNotOwner]), so callers can
// branch with errors.Is:
//
//	pidfile: /run/app.pid: malformed: not a decimal number (found "12a\n")
//
// [ReadLive] also asks a [Probe] (procs.StartTime, or nil for the package's
// own /proc reader, which counts zombies as gone) when the process started.
// A pid whose process is gone is [ErrGone]; a process that started after the
// file was written ([ReuseTolerance] aside) is [ErrReused]: the master died,
// the kernel recycled its pid, and signalling it would hit an innocent
// program.
//
// # Locked files and foreign masters
//
// [Locked] matches the file's device and inode against the FLOCK lines of
// /proc/locks. Only masters that lock their pid file (baton's own, through
// [Create]) ever read as locked: nginx and unicorn do not lock theirs, so
// for them use [ReadLive], and [RestoreOldbin] (which accepts a Probe) for
// rollbacks. flock(2) is advisory and local: keep pid files on a local
// filesystem (/run is tmpfs), not NFS, where flock is emulated with POSIX
// locks.
//
// # Security
//
// A pid file is an instruction to signal a process. When baton runs as root,
// a pid file that another user can write or owns, or that lives in a
// directory (or below one) another user can write or owns, would let that
// user make baton signal any process on the machine. [CheckSecure] refuses
// such files with an error that says which check failed and why:
//
//	pidfile: /run/x.pid: insecure: directory /run is writable by other users (mode 0777); anyone could make baton signal any process
//
// [Read], [ReadLive], [Locked], [Create] and [RestoreOldbin] apply it
// when running as root; the package-level functions allow only root as the
// owner, and the [Options] methods of the same names also allow
// [Options.ServiceUID]. A sticky, world-writable directory such as /tmp is
// accepted, because there only a file's owner can replace it and the file's
// own owner is checked.
//
// The path is walked from "/" one component at a time with openat(2) and
// O_NOFOLLOW, each directory checked on the descriptor opened; a symlink on
// the way (/var/run -> /run) is followed only when root (or the service
// user) owns it, and its target is walked the same way. Readers
// ([Options.ReadSecure], which Read, ReadLive and Locked use as root) check
// the file's own descriptor — owner, mode, a regular file with a single
// link — and parse what they read from it, so a path swapped after the
// check cannot serve another file.
//
// The files baton keeps beside a pid file — the upgrade journal and lock, a
// baton master's status file — go through [Options.ReadState],
// [Options.OpenState] and [Options.WriteState]: never a symlink, only a
// regular file with one link owned by root or baton's euid and writable by
// nobody else, at most a bounded size; written to an O_EXCL temporary file
// and renamed.
//
// # Pitfalls
//
//   - Keep a [File] open for the master's whole life and call [File.Close]
//     only when exiting: closing drops the lock, and a successor may then
//     take the path. [File.Remove] never deletes a file that is no longer
//     this File's inode ([ErrNotOwner]).
//   - [Locked] returns locked=true with an error when a locked file's
//     content does not parse; check err before pid.
//   - The filesystem holding the pid file should support renameat2(2)'s
//     RENAME_NOREPLACE (tmpfs, ext4, xfs and btrfs do); elsewhere a new
//     pid file is hard-linked into place and has two links for a moment,
//     during which secure readers refuse it.
package pidfile
