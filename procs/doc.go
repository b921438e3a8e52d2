// Package procs is everything baton knows about a process, read from /proc and
// golang.org/x/sys/unix.
//
// # Identity
//
// A pid alone names a process only until it exits: the kernel hands the number
// to the next process that needs one. An [Identity] is a pid plus the start time
// the kernel recorded for it (/proc/PID/stat field 22, in clock ticks since
// boot), which no later process can share. A [Process] handle pins an identity
// when it is opened and never signals a different process: on kernels with
// pidfds (Linux 5.3+) it holds a pidfd and signals through pidfd_send_signal(2);
// elsewhere it re-checks the start time before every kill(2).
//
// # Zombies
//
// An exited process that its parent has not reaped stays in /proc in state Z.
// Containers whose PID 1 never reaps keep such zombies for a long time, so every
// function here treats a zombie as gone.
//
// # Listeners
//
// [Listeners] matches the socket inodes in /proc/PID/fd against the listening
// sockets in the process's own network namespace (/proc/PID/net/tcp, tcp6 and
// unix). Two processes that hold the same inode hold the same socket: that is
// how an upgrade proves a new master inherited its listeners rather than bound
// new ones.
package procs
