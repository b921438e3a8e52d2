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
// Opening is race-free too: [OpenIdentity] checks the start time, calls
// pidfd_open(2), then checks the start time again. If the pid still shows the
// same start time after the pidfd exists, the pidfd refers to that process (a
// pid cannot pass from one process to another and back).
//
// # Waiting
//
// [Process.Wait] works for any process, not only children: it blocks in
// poll(2) on the pidfd, which becomes readable when the process exits (reaped
// or not), together with an eventfd that a cancelled context or [Process.Close]
// writes to. Without pidfds it re-reads /proc/PID/stat with exponential
// backoff from 1ms to 50ms, so it notices an exit up to ~50ms late.
//
// # Zombies
//
// An exited process that its parent has not reaped stays in /proc in state Z.
// Containers whose PID 1 never reaps keep such zombies for a long time, so every
// function here treats a zombie as gone, except [Info], which describes it
// (State 'Z', no exe, cwd or command line) so that it can be reported.
// Errors for gone processes wrap [ErrGone] and [io/fs.ErrNotExist].
//
// # Start time
//
// [Stat.StartTime] and [StartTime] are the boot instant (CLOCK_REALTIME minus
// CLOCK_BOOTTIME, read at the call) plus the start ticks divided by
// [ClockTicks], which is USER_HZ = 100 on Linux. /proc/stat's btime is rounded
// to the second and is not used. A wall clock stepped after the process
// started moves the result with it: compare identities, not times.
//
// # Roles
//
// [Stat.Role] reads the titles nginx, unicorn (and Rainbows!) and gunicorn
// write over their argv ("nginx: master process ...", "unicorn worker[0] ...")
// and recognises "baton run". The rewritten argv area reads as one string
// with spaces padded by NULs, not as separate arguments. gunicorn sets titles
// only when the Python setproctitle module is installed; Debian's gunicorn
// does not depend on it, and then its role is unknown.
//
// # Listeners
//
// [Listeners] matches the socket inodes in /proc/PID/fd against the listening
// sockets in the process's own network namespace (/proc/PID/net/tcp, tcp6 and
// unix). Two processes that hold the same inode hold the same socket: that is
// how an upgrade proves a new master inherited its listeners rather than bound
// new ones; [Sockets] reads only a process's descriptors, which is all that
// proof needs once the old master's listeners are known. When the process shares baton's network namespace the listening
// TCP sockets come from sock_diag(7) netlink (as ss(8) gets them), filtered
// by the kernel: /proc/net/tcp lists every TIME_WAIT socket too and takes
// ~0.1s to generate on a busy machine. The /proc tables are streamed and left
// as soon as every socket of the process was found. [SocketHolders] goes the
// other way, from socket inodes to every process holding one, by reading the
// descriptors of every process.
//
// # Children
//
// [Children] reads /proc/PID/task/TID/children of each thread of the parent
// (CONFIG_PROC_CHILDREN), which costs as much as the parent has threads and
// children, not as many processes as the host runs. proc(5) warns that the
// files are unreliable unless the children are frozen: the kernel may skip
// a child when a child it already listed leaves the list during the read.
// So every listed child is read again afterwards and must still be the
// parent's, and the parent's threads must be the same: a read that changed
// is retried, and after a few tries, or where the files are missing, all of
// /proc is scanned. A child that ran through the call is missing from its
// answer in one case only: a thread of the parent that started after the
// first listing of its threads, forked that child and exited before the
// second (its children move to the tail of a thread already read). The
// masters baton drives fork from threads that live as long as they do
// (nginx, unicorn and gunicorn masters have one; Go ends a thread only when
// a goroutine locked to it exits), and the waits look again. Each child is
// read in two files (stat and cmdline), not Info's five: a look at a master
// with 64 workers reads every one of them.
//
// # Process events
//
// [WatchTree] follows a tree of processes through the kernel's process-event
// connector (netlink, CN_IDX_PROC): each fork, exec or exit in the tree wakes
// the caller, which then reads /proc again. It is a wake-up only: events can
// be lost when the socket's buffer overflows (that wakes the caller too) and
// the connector needs root in the initial namespaces, so callers keep polling
// as a fallback and never conclude anything from an event alone. The kernel
// answers the subscription only when it took it, which is how WatchTree tells
// a working connector from a refused one (ErrUnsupported); it then narrows
// the subscription to forks, execs and exits (Linux 6.6+).
//
// # Environment and descriptors
//
// [Environ] and [FDTarget] take an [Identity], not a pid: they read through
// the /proc/PID directory only after checking its start time, so what they
// return belongs to that process or they fail with ErrReused or ErrGone.
//
// # Pitfalls
//
//   - The command name in /proc/PID/stat is printed unescaped between
//     parentheses and may contain spaces, ')' and newlines; [ParseStat] ends it
//     at the last ')'.
//   - Files of one process are read relative to an open /proc/PID directory:
//     after that process is reaped they fail instead of silently describing the
//     process that got its pid next.
//   - /proc/PID/stat's state is the main thread's: a multi-threaded process
//     whose main thread sleeps reads 'S' while other threads run.
//   - pidfd_send_signal(2) and kill(2) succeed on a zombie; Signal checks for
//     exit first and reports ErrGone.
//   - Reading another user's /proc/PID/exe, cwd, fd or environ needs
//     CAP_SYS_PTRACE: Info leaves Exe and Cwd empty then, Listeners, Environ
//     and FDTarget return a permission error, SocketHolders skips the process.
//   - /proc/PID/environ is the memory the environment was passed in at
//     execve(2): later setenv(3) calls do not show, and a title written over
//     argv (nginx does) may run on over it.
//   - tcp addresses in /proc/net are 32-bit words in host byte order
//     (127.0.0.1 reads "0100007F" on x86); a unix socket path containing a
//     newline spills onto the next line of /proc/net/unix and is cut there.
//   - Without pidfds (Linux < 5.3, or a seccomp filter) a signal can still
//     reach a recycled pid if the process exits, is reaped and its pid reused
//     in the microseconds between the start-time check and kill(2).
package procs
