// Package upgrade drives a running master through the nginx binary-upgrade
// protocol as a checked state machine.
//
// # The procedure
//
// Start runs preflight (a live master of the expected flavor, no upgrade
// pending, the binary it will exec and its working directory exist, the
// preflight command and the checks pass; otherwise nothing is touched),
// spawn (USR2; the old pid file moves aside, the new master is a child of
// the old one, has its workers, holds the same listening socket inodes and
// passes the checks), drain (WINCH, and TTOU where the flavor ignores WINCH
// when not daemonized) and verify (the checks keep passing). It stops in
// Drained unless Options.Commit. Commit stops the old master; Rollback
// brings the old workers back (HUP, or TTIN per missing worker), stops the
// new master (graceful, fast, KILL) and restores the pid file if the old
// master did not. Any failure after the spawn rolls back unless
// Options.NoAutoRollback.
//
// Reload is what "systemctl reload" means (the shipped units' ExecReload=):
// Start with Commit when the running master's binary was replaced on disk
// (MasterObs.BinaryGone), else a configuration reload outside the state
// machine: the preflight command (the configuration test), the flavor's
// Reload signal (HUP), the master's new workers (a baton master's status
// file counts the reload, or says why it refused it), the checks.
// Options.Reload forces either.
//
// # States
//
//	Idle / Committed / RolledBack
//	  │ spawn (USR2)
//	  ▼
//	Spawning ──spawned──▶ Spawned ──drain (WINCH)──▶ Draining ──drained──▶ Drained
//	  │                     │  │                        │                   │  │
//	  │                     │  └──commit──▶ Committing ◀┼───────commit──────┘  │
//	  │                     │                 │   │     │                      │
//	  │                     │      committed  ▼   │     │                      │
//	  │                     │           Committed │     │                      │
//	  └──────rollback───────┴─────────────────────┴──┬──┴──────────────────────┘
//	                                                 ▼
//	                                           RollingBack ──rolled-back──▶ RolledBack
//
//	Spawning … RollingBack ──break──▶ Inconsistent ──commit | rollback──▶ Committing | RollingBack
//	Down (no live master) is only ever observed, never entered by an event.
//
// The table in state.go is the one source of truth; Next applies it and
// returns a *TransitionError (wrapping ErrIllegalTransition) for any other
// pair, such as a commit while Idle.
//
// # Observation, journal and lock
//
// Every CLI run is a new process, so the state is derived from what is
// observed — both pid files, the identity (pid and start time) of each
// master, parentage, worker counts, listener inodes, a baton master's status
// file — by Classify, a pure function. The journal (<pidfile>.upgrade.json,
// written atomically) records what baton did: the state, both masters'
// identities, timestamps and every transition; a later command resumes from
// it and reconciles it with what it observes, saying what changed behind
// its back. One orchestrator runs per pid file: <pidfile>.upgrade.lock is a
// non-blocking flock whose file holds the holder's pid.
//
// # Flavors
//
// The dialects (nginx, unicorn and Rainbows!, gunicorn, baton) are rows of
// Flavors: pid file layout, signals, drain fallback, who restores the pid
// file. No signal appears outside that table. Known pitfalls, from the
// sources of the versions Debian ships:
//
//   - nginx 1.22 ignores WINCH unless daemonized (or started by an upgrade),
//     and ignores USR2 while its parent is still the process that started it
//     ("daemon off" under a supervisor) or while a new binary runs. It
//     re-execs its own argv[0]: start it by absolute path.
//   - unicorn 6.0 ignores WINCH when stdin is a tty; TTOU goes to zero. It
//     restores its pid file when the new master dies but starts no workers.
//   - gunicorn 20.1 writes <pidfile>.2 for the new master and renames it
//     once the old master is gone (checked every second); WINCH needs
//     --daemon and TTOU stops at one worker; TERM is its graceful stop.
//
// # Identities and leftovers
//
// Every master and worker is pinned by identity (pid and start time) before
// it is signalled, so a recycled pid is never signalled; a pid file whose
// pid the journal knows with another start time names no master, nor one
// whose process, unknown to the journal, started after the file was
// written (a wall-clock comparison, so the journal's exact identities come
// first: a clock step must not make its own masters look reused). A new master is pinned
// when first seen as the old master's child (its title may change when it
// execs, as unicorn's does) and recorded in the journal at once, and so
// are its workers as they are seen. A child that has not exec'd since its
// fork (procs.Stat.Forked) is never taken for a new master, whatever its
// title: a worker forked a moment ago still shows its master's title, and
// every new master execs. The journal alone never gets an
// identity signalled: live observation must confirm it (a new master is the
// old one's child or named by a pid file; an old master is named by a pid
// file or is the new one's parent). A rollback also stops, by identity,
// what is left of the new generation holding the listening sockets:
// workers orphaned by a new master that was killed (nginx's keep serving),
// pinned or titled as workers and started after the upgrade signal. Every
// other holder is left alone (sweep.go): PID 1, the service manager that
// passed the sockets (systemd under socket activation), the old master and
// everything below it (a worker script's server). A new master that came
// and went between two looks is noticed by the pid file's inode coming
// back with a new change time.
//
// # Waiting
//
// Every wait has a timeout and a context. Process exits are events
// (procs.Process.Wait, a pidfd); pid file changes wake waits through
// inotify on the pid file's directory; during Start, the forks and execs of
// the old master's process tree (the new master, its workers) wake them
// through the kernel's process-event connector (procs.WatchTree) where
// baton may use it (root in the initial namespaces). An event only wakes a
// wait: what it concludes comes from the next look at /proc, so a lost
// event costs time, never a wrong answer; a backoff from 5ms to 200ms is
// the fallback, and what has no event (a worker's new title, a health
// check) is polled with it.
//
// While Start waits, looks read only descriptors for the old master's
// listeners pinned by the preflight (procs.Sockets): whether the new master
// holds them is a question of socket inodes, not of the network tables.
//
// # Interrupts
//
// The context a verb is given is an instruction to abort safely when it is
// done, never to stop half-way: before the upgrade signal nothing is sent
// (ErrInterrupted); after it, Start rolls back (ErrRolledBack); a commit
// whose stop signal was sent, and a rollback, finish. That work runs on a
// detached context bounded by the machine's own timeouts and by
// Options.Hard (a second interrupt): when Hard is done the verb stops at
// once (ErrInconsistent) and the journal says what is pending.
//
// # Health checks
//
//	http://127.0.0.1:8080/health   2xx expected (https:// verifies TLS unless InsecureTLS)
//	unix:/run/app.sock:/health     HTTP over a unix socket
//	tcp://127.0.0.1:8080           a connection is accepted
//	exec:CMD                       sh -c CMD exits 0
//
// exec: checks and the preflight command run in a process group of their
// own with a scrubbed environment; at their timeout the whole group is
// stopped and waited for, and nothing they leave in it outlives them
// (command.go).
package upgrade
