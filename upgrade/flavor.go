package upgrade

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
)

// Flavor is one dialect of the binary-upgrade protocol. Flavors are data:
// adding a dialect is adding a row to Flavors, and no signal appears
// anywhere else in this package.
type Flavor struct {
	Name string
	// Match reports whether a master's command line is this flavor's.
	Match func(cmdline []string) bool

	// Aside is the suffix of the second pid file during an upgrade.
	// AsideHoldsNew says who writes it: false (nginx, unicorn, baton) the
	// old master renames <path> to <path>+Aside before it execs the new
	// one, which writes <path>; true (gunicorn) the old master keeps <path>
	// and the new one writes <path>+Aside, renaming it to <path> once the
	// old master has exited (PromotesPidfile).
	Aside           string
	AsideHoldsNew   bool
	PromotesPidfile bool

	Signals
	// DrainFloor is the number of workers DrainStep never goes below.
	DrainFloor int
	// DrainHonoured, when set, reports that the master honours Drain down to
	// zero workers, so DrainFloor does not apply to it (gunicorn with
	// --daemon); nil means DrainFloor always applies.
	DrainHonoured func(m MasterFacts) bool
	// DrainIgnored, when set, explains why the master will ignore Drain and
	// has no DrainStep to fall back on; "" when Drain will work.
	DrainIgnored func(m MasterFacts) string
	// DrainTitle, with DrainIgnored, is a part of the title a worker takes
	// once told to drain: when DrainIgnored cannot tell from the master's
	// facts (a master started by an upgrade baton did not record hides it:
	// nginx's title overwrites its environment), a worker retitled or gone
	// shortly after Drain shows it was honoured (see drainProbe).
	DrainTitle string
	// RespawnAdds: Respawn adds one worker and is sent once per missing
	// worker.
	RespawnAdds bool
	// CountsDraining: the master counts a worker it told to stop among its
	// workers until the worker exits, and Respawn (TTIN) raises its target
	// count, spawning only while fewer than the target run. A worker still
	// finishing a request after the drain thus hides one Respawn, and the
	// master replaces it when it exits: rollback waits for the workers told
	// to drain to be gone (up to DrainTimeout) before counting how many to
	// add (unicorn's worker_processes, gunicorn's num_workers).
	CountsDraining bool

	// RestoresPidfile: the old master renames <path>.oldbin back to <path>
	// itself when the new master dies (nginx, unicorn).
	RestoresPidfile bool
	// RespawnsWorkers: the old master starts workers again by itself when
	// the new master dies (nginx).
	RespawnsWorkers bool
	// StatusFile: the master publishes a statusfile.Master at statusfile.Path.
	StatusFile bool
	// UpgradeIgnored says when the master ignores Upgrade, for the message
	// of a spawn that never starts.
	UpgradeIgnored string
	// MasterEnv, when set, is an environment variable naming the parent's
	// pid that a master started by Upgrade has: it tells a new master from a
	// worker when their command lines are the same (gunicorn without
	// setproctitle). Without it, a child whose command line matches is a
	// master.
	MasterEnv string
	// TitledWorkers: every worker carries a worker title (procs.RoleWorker)
	// once it runs, so a child holding the master's listeners that has
	// none of the flavor's titles is what Upgrade exec'd: a new master
	// still booting under its program's name (nginx until it sets its
	// title, unicorn while it loads the app, before it writes its pid
	// file), or whatever replaced the binary. WorkerEnv, when set, is an
	// environment variable that a worker exec'd under its program's name
	// has instead (unicorn's worker_exec).
	TitledWorkers bool
	WorkerEnv     string
	// ExecPath, when set, is the program the master will exec on Upgrade,
	// as it names it (a relative path is taken from its working
	// directory); nil means the binary /proc/PID/exe points to.
	ExecPath func(cmdline []string) string
}

// Signals is a flavor's signal table.
type Signals struct {
	Upgrade syscall.Signal // start a new master beside the old one
	// Drain stops the old master's workers while it keeps its listeners.
	Drain syscall.Signal
	// DrainStep, when set, removes one worker; it is sent once per worker
	// after Drain, for masters that ignore Drain when not daemonized
	// (unicorn when stdin is a tty, gunicorn without --daemon). It never
	// goes below the flavor's DrainFloor workers.
	DrainStep syscall.Signal
	// Respawn brings an old master's workers back (rollback), all of them
	// or, with the flavor's RespawnAdds, one.
	Respawn   syscall.Signal
	Stop      syscall.Signal // graceful stop
	Terminate syscall.Signal // fast stop, the step before SIGKILL
	// Reload makes the master re-read its configuration and replace its
	// workers with new ones: a configuration reload (Machine.Reload).
	Reload syscall.Signal
}

// nginxSignals is the protocol of nginx (src/os/unix/ngx_process.c), which
// baton's own master speaks too.
var nginxSignals = Signals{
	Upgrade:   syscall.SIGUSR2,
	Drain:     syscall.SIGWINCH,
	Respawn:   syscall.SIGHUP,
	Stop:      syscall.SIGQUIT,
	Terminate: syscall.SIGTERM,
	Reload:    syscall.SIGHUP,
}

// Floor is the number of workers the drain of master m can leave: zero
// where Drain goes all the way, else DrainFloor.
func (f Flavor) Floor(m MasterFacts) int {
	if f.DrainHonoured != nil && f.DrainHonoured(m) {
		return 0
	}
	return f.DrainFloor
}

// gunicornDaemon reports a --daemon (-D) among gunicorn's arguments.
// A daemon setting in a config file is not seen: the floor then stays.
func gunicornDaemon(args []string) bool {
	for _, a := range args {
		if a == "-D" || a == "--daemon" {
			return true
		}
	}
	return false
}

// envValue returns the value of name in environ ("" when absent).
func envValue(environ []string, name string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// MasterFacts is what DrainIgnored and DrainHonoured need to know about an
// old master.
type MasterFacts struct {
	PID       int
	Cmdline   []string // nil when unreadable
	Session   int      // session id, /proc/PID/stat field 6
	Environ   []string // nil when unreadable
	StdinTTY  bool
	Inherited bool // started by an upgrade (nginx: NGINX in its environment)
}

// SignalName is the short name of sig as operators write it: "USR2".
func SignalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGKILL: "KILL",
	syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2", syscall.SIGTERM: "TERM", syscall.SIGWINCH: "WINCH",
	syscall.SIGTTIN: "TTIN", syscall.SIGTTOU: "TTOU",
}

// ForceKill is the last step of stopping a master that ignores Stop and
// Terminate. It is the one signal shared by every flavor.
const ForceKill = syscall.SIGKILL

func cmdlineHas(cmdline []string, subs ...string) bool {
	joined := strings.Join(cmdline, " ")
	for _, s := range subs {
		if !strings.Contains(joined, s) {
			return false
		}
	}
	return true
}

// Flavors is the table of dialects, tried in order by Detect.
var Flavors = []Flavor{
	{
		// baton's own master (upgrade/master): nginx's protocol plus a
		// status file; WINCH works undaemonized; it restores its pid file
		// and starts a generation again when its new master exits.
		Name:            "baton",
		Match:           func(c []string) bool { return len(c) > 1 && cmdlineHas(c, "baton") && slices.Contains(c, "run") },
		Aside:           ".oldbin",
		Signals:         nginxSignals,
		StatusFile:      true,
		RestoresPidfile: true,
		RespawnsWorkers: true,
		UpgradeIgnored:  "baton run ignores USR2 while another master of its pid file runs; see its log",
	},
	{
		// nginx 1.22, src/os/unix/ngx_process.c: WINCH is only honoured when
		// ngx_daemonized, which is set by "daemon on" or for a master
		// started by an upgrade. USR2 is ignored while the master's parent
		// is still the process that started it ("daemon off" under a
		// supervisor) and while a new binary runs. The old master renames
		// .oldbin back and starts workers when the new master dies.
		Name:            "nginx",
		Match:           func(c []string) bool { return cmdlineHas(c, "nginx: master process") },
		Aside:           ".oldbin",
		Signals:         nginxSignals,
		RestoresPidfile: true,
		RespawnsWorkers: true,
		TitledWorkers:   true,
		// nginx execs its own argv[0] (ngx_exec_new_binary), which the title
		// keeps after "master process": a bare "nginx" cannot be re-executed.
		UpgradeIgnored: "nginx ignores USR2 while a new binary runs and while its parent is still the process that started it (\"daemon off\" under a supervisor); see its error log",
		ExecPath: func(c []string) string {
			f := strings.Fields(strings.Join(c, " "))
			if len(f) > 3 && f[1] == "master" && f[2] == "process" {
				return f[3]
			}
			return ""
		},
		// ngx_worker_process_cycle: "worker process is shutting down" once
		// the master passed WINCH on as QUIT.
		DrainTitle: "is shutting down",
		DrainIgnored: func(m MasterFacts) string {
			if m.Inherited || (m.Session != 0 && m.Session == m.PID) {
				return ""
			}
			return "nginx ignores WINCH when not daemonized (\"daemon off\" and not started by an upgrade): its workers keep serving beside the new ones until commit"
		},
	},
	{
		// unicorn 6.0, lib/unicorn/http_server.rb: WINCH is ignored when
		// stdin is a tty, TTOU goes down to zero workers; the old master
		// renames .oldbin back when the new master exits (reap_all_workers)
		// but does not respawn workers. HUP would reload worker_processes
		// from the config file, or re-exec when there is none (which fails
		// while the new master lives, leaving zero workers), so rollback
		// sends TTIN once per missing worker instead.
		Name: "unicorn",
		Match: func(c []string) bool {
			return cmdlineHas(c, "unicorn", "master") || cmdlineHas(c, "rainbows", "master")
		},
		Aside: ".oldbin",
		Signals: Signals{
			Upgrade:   syscall.SIGUSR2,
			Drain:     syscall.SIGWINCH,
			DrainStep: syscall.SIGTTOU,
			Respawn:   syscall.SIGTTIN,
			Stop:      syscall.SIGQUIT,
			Terminate: syscall.SIGTERM,
			Reload:    syscall.SIGHUP, // config file re-read, workers restarted
		},
		RespawnAdds:     true,
		CountsDraining:  true,
		UpgradeIgnored:  "unicorn ignores USR2 while its re-executed child runs or while <pidfile>.oldbin names a live master; see its stderr log",
		RestoresPidfile: true,
		TitledWorkers:   true,
		WorkerEnv:       "UNICORN_WORKER",
	},
	{
		// gunicorn 20.1, gunicorn/arbiter.py: the new master writes
		// <pidfile>.2 and renames it to <pidfile> once its parent (the old
		// master) is gone (maybe_promote_master, polled every second);
		// WINCH is ignored without --daemon and TTOU stops at one worker;
		// QUIT is a fast stop, TERM the graceful one; HUP would replace every
		// worker, so rollback adds the missing ones with TTIN.
		Name:            "gunicorn",
		Match:           func(c []string) bool { return cmdlineHas(c, "gunicorn") },
		Aside:           ".2",
		AsideHoldsNew:   true,
		PromotesPidfile: true,
		Signals: Signals{
			Upgrade:   syscall.SIGUSR2,
			Drain:     syscall.SIGWINCH,
			DrainStep: syscall.SIGTTOU,
			Respawn:   syscall.SIGTTIN,
			Stop:      syscall.SIGTERM,
			Terminate: syscall.SIGINT,
			Reload:    syscall.SIGHUP, // configuration reloaded, workers replaced
		},
		DrainFloor: 1,
		// handle_winch: "if self.cfg.daemon: ... self.num_workers = 0".
		DrainHonoured: func(m MasterFacts) bool {
			return gunicornDaemon(m.Cmdline) || gunicornDaemon(strings.Fields(envValue(m.Environ, "GUNICORN_CMD_ARGS")))
		},
		RespawnAdds:     true,
		CountsDraining:  true,
		MasterEnv:       "GUNICORN_PID",
		UpgradeIgnored:  "gunicorn ignores USR2 while a child or parent master exists; see its error log",
		RestoresPidfile: true, // it never moves the old master's file
	},
}

// FlavorNames lists the flavors by name, for help texts.
func FlavorNames() []string {
	names := make([]string, len(Flavors))
	for i, f := range Flavors {
		names[i] = f.Name
	}
	return names
}

// LookupFlavor returns the flavor named name.
func LookupFlavor(name string) (Flavor, error) {
	for _, f := range Flavors {
		if f.Name == name {
			return f, nil
		}
	}
	return Flavor{}, fmt.Errorf("%w: unknown flavor %q (want auto or one of %s)", ErrBadInput, name, strings.Join(FlavorNames(), ", "))
}

// Detect returns the first flavor whose Match accepts cmdline. baton comes
// first in the table: "baton run -- gunicorn ..." is a baton master.
func Detect(cmdline []string) (Flavor, bool) {
	for _, f := range Flavors {
		if f.Match(cmdline) {
			return f, true
		}
	}
	return Flavor{}, false
}

// AsidePath is the second pid file of an upgrade for pidfile.
func (f Flavor) AsidePath(pidfile string) string { return pidfile + f.Aside }

// OldPath is where the old master's pid is during an upgrade.
func (f Flavor) OldPath(pidfile string) string {
	if f.AsideHoldsNew {
		return pidfile
	}
	return f.AsidePath(pidfile)
}

// NewPath is where the new master writes its pid during an upgrade.
func (f Flavor) NewPath(pidfile string) string {
	if f.AsideHoldsNew {
		return f.AsidePath(pidfile)
	}
	return pidfile
}
