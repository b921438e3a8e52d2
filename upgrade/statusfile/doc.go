// Package statusfile is the status file a baton master (`baton run`,
// package upgrade/master) publishes about itself and the orchestrator
// (package upgrade, `baton upgrade`) reads: the protocol between the two
// sides, and nothing else. It imports only the standard library, so neither
// side depends on the other.
//
// # Files
//
// A master started with pid file P and running as pid N keeps two files
// beside P, both named after P as it was configured (never after the
// P.oldbin it is renamed to on USR2), so that an old and a new master never
// share one:
//
//	P.N.status   [Master] as indented JSON, rewritten on every change ([Path])
//	P.N.notify   the NOTIFY_SOCKET workers send READY=1 to ([NotifyPath])
//
// # Writing and reading
//
// [Write] writes a temporary file beside the status file and renames it over
// it, so [Read] sees the previous status or the new one, never a mix. It
// does not fsync: the file describes running processes, which a power loss
// ends too, and what it must survive (a master or an orchestrator killed
// mid-write) leaves the page cache intact.
//
// # Pitfalls
//
//   - The file of a master that was killed (SIGKILL) outlives it; a later
//     process given the same pid finds it. [Master.PID] and [Master.Start]
//     name the process that wrote it, as a procs.Identity does.
//   - Updated changes on every write; compare statuses without it.
package statusfile
