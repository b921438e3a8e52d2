// Package master is baton's own master process (`baton run`): the other side
// of the upgrade protocol, for programs that cannot upgrade themselves the
// nginx way. The program runs as the master's workers; the master holds the
// listening sockets, so that a new release takes over the very same sockets
// and not a connection is refused or reset.
//
// Run is the whole API: it takes Options (flags win over the --config file;
// each zero value is documented) and returns when the master has stopped.
//
// # Signals
//
// One table (signals.go) maps signals to actions, with nginx's meanings:
//
//	USR2   start a new master: the baton program found again by the path it
//	       was started with, same arguments, listeners passed at fds 3..
//	       (EnvInheritFDs); the pid file becomes <pidfile>.oldbin
//	WINCH  stop all workers gracefully; keep the listeners
//	HUP    re-read config and envfile, start a fresh generation; when it is
//	       ready, stop the old one (after WINCH: workers come back); a bad
//	       configuration is refused and the master serves on; the status
//	       file counts reloads and says why the last one was refused
//	QUIT   graceful stop: workers get --stop-signal, KILL after --stop-timeout
//	TERM   fast stop: workers get TERM (INT alike)
//	USR1   reopen --log-file and --worker-log-file; pass USR1 to the workers
//	TTIN   one worker more; TTOU one fewer (not below 1)
//
// # An upgrade, from the masters' side
//
//	old master                               new master
//	----------                               ----------
//	USR2: pid file -> .oldbin, start ──────> inherit sockets (same inodes),
//	      (pending: child alive)             write pid file, start workers
//	                                         generation ready: status ready,
//	                                         sd_notify MAINPID=new, READY=1
//	WINCH: stop workers (draining)           serves alone
//	QUIT: exit, remove .oldbin  ─ commit ──> parent gone: no longer pending
//	  or
//	HUP: workers again; once they are       (still serving)
//	     ready sd_notify MAINPID=old
//	QUIT new ──────────────── rollback ───> exits; the old master renames
//	                                         .oldbin back, MAINPID=old again
//
// USR2 is ignored (and logged) while an upgrade is pending: a child master
// is alive, or this master is the new one and its parent still runs. USR2 is
// refused, pid file untouched, when the binary, the config or --dir is bad.
// If the new master dies before the commit, the old one takes the pid file
// back and, if it had drained, starts a generation again.
//
// # Workers and readiness
//
// A generation is a set of --workers copies of the command started together,
// numbered from 1 across masters (BATON_GENERATION). A worker is ready when
// it sends READY=1 to the NOTIFY_SOCKET baton gives it (--ready notify; the
// sender is identified by SCM_CREDENTIALS, or as a descendant of a worker),
// or when it has lived for the delay (--ready delay:DUR). A generation is
// ready when all its workers are at once; only then is it announced (status,
// systemd) and does it retire the generation before it. A worker that exits
// is restarted with exponential backoff; CrashLoop consecutive failures flag
// a crash loop in the status, and such a generation is never reported ready.
//
// # Logs
//
// The master logs with log/slog, as text or JSON (--log-format), to stderr
// or --log-file. With --worker-log-file each worker's stdout and stderr are
// one pipe of its own, which a goroutine of the master copies to the file
// whole lines at a time (logs.go): a worker's lines stay whole and in order
// whatever the others write, and USR1 reopens the file by its path for
// logrotate. A pipe ends when everything holding it has closed it; at its
// exit the master takes what the pipes hold and stops waiting, so a process
// that left a worker's group (setsid) with the pipe cannot hold it up.
// Write errors are logged when they begin and when writing works again,
// with the bytes dropped meanwhile: a full disk does not block the workers.
//
// # systemd
//
// Besides READY=1, RELOADING=1, STOPPING=1 and MAINPID=, the master sends a
// STATUS= line saying what it does ("serving: generation 3, 2 workers",
// "upgrading: new master N starting", "draining: ...", "rolled back: ...",
// sdstate.go), when it changes and every 5s, and with WatchdogSec= it pings
// WATCHDOG=1 every quarter period from its event loop. Only a master whose
// old master is gone speaks: while the old one runs it is the unit's main
// pid. The watchdog passes to the new master on USR2 (WATCHDOG_PID set to
// the old master's pid, which the new one accepts); workers never get it.
//
// # Environment policy
//
// The master records the environment it was first started with (minus
// LISTEN_* and baton-internal variables) and every later master starts from
// that record, so the environment does not grow with every upgrade. A worker
// starts from the record minus every BATON_* variable, NOTIFY_SOCKET (an old
// worker's STOPPING=1 reaching systemd stops the unit), WATCHDOG_*, LISTEN_*,
// SERVER_STARTER_PORT and --env-drop names; then --envfile, re-read at every
// start; then LISTEN_FDS, LISTEN_PID (the worker's own pid), LISTEN_FDNAMES,
// SERVER_STARTER_PORT ("addr=fd;addr=fd"), BATON_GENERATION, BATON_WORKER
// and, with --ready notify, baton's NOTIFY_SOCKET.
//
// # Pitfalls handled here
//
//   - A worker gets its stop signal (--stop-signal) when its master dies
//     (Pdeathsig), so a master killed outright leaves no worker serving an
//     old release, and the requests its workers hold are still answered.
//     Pdeathsig is per thread in Linux (prctl(2)): a worker forked from a Go
//     thread that later exits would be signalled with it. Workers are forked
//     from one goroutine locked to its thread for the master's life
//     (workers.go).
//   - Workers inherit nothing by accident: every descriptor baton inherited
//     is marked close-on-exec at start, and only the listeners are passed
//     (ExtraFiles). Each worker leads its own process group and is signalled
//     as a group, so a script that runs its server without exec stops with
//     it; a worker is reaped only once its whole group is gone, so the
//     group id is never a recycled pid (isolate.go).
//   - LISTEN_PID must be the worker's own pid, unknown before fork: a
//     /bin/sh trampoline sets LISTEN_PID=$$ and execs the command.
//   - The new master is the file at the original path (not /proc/self/exe),
//     so a replaced binary or a switched release symlink is used; --dir is
//     chdir'd by path at every worker start, and the master itself works
//     from "/" so that a deleted release directory pins nothing.
//   - Sockets pass across exec, never re-bound (SO_REUSEPORT would reset the
//     connections queued on the closed socket). A unix socket file is
//     unlinked only by the last master out, and only if it is still the file
//     baton created.
//   - Only a master with no live parent or child sends STOPPING=1. The new
//     master sends MAINPID= before systemd knows it as the main process;
//     the shipped unit (NotifyAccess=main, so that no worker can speak for
//     the unit) drops that and moves the main pid through PIDFile= instead
//     (scripts/systemd/baton@.service).
//   - Go's http.Server.Shutdown drops a request it reads on a connection
//     accepted just before shutdown began; the test worker drains by closing
//     its listeners and disabling keep-alives instead (main_test.go).
package master
