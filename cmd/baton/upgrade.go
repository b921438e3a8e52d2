package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/upgrade"
)

// upgradeCommand is `baton upgrade start|commit|rollback|status`.
func upgradeCommand() *cli.Command {
	return &cli.Command{
		Name:  "upgrade",
		Usage: "upgrade a running master (nginx, unicorn, gunicorn, baton) without dropping a request",
		Description: `The upgrade is a checked state machine, journaled next to the pid file
(<pidfile>.upgrade.json) and locked (<pidfile>.upgrade.lock), so every verb
works in a later invocation and after a crash:

   start     preflight, USR2, verify the new master, drain the old workers,
             verify; stops with both masters alive unless --commit
   commit    stop the old master; the new one stays
   rollback  bring the old workers back, stop the new master, restore the
             pid file
   status    what runs, what the pid files and the journal say, health

INTERRUPTS (SIGINT, SIGTERM, SIGHUP): the first aborts safely, said on
stderr and in --json ("interrupted"): start before USR2 signals nothing
(exit 2), start after USR2 rolls back (exit 1), a commit or rollback under
way finishes (exit 0). A second stops at once (exit 4); the error names the
'baton upgrade' command that finishes.

EXAMPLES:
   baton upgrade start --pidfile /run/nginx.pid --preflight 'nginx -t' \
       --check http://127.0.0.1/health
   baton upgrade commit --pidfile /run/nginx.pid
   baton upgrade rollback --pidfile /run/nginx.pid
   baton upgrade start --pidfile /run/app.pid --check unix:/run/app.sock:/health --commit
   baton upgrade status --pidfile /run/unicorn.pid --json

` + exitCodesHelp,
		Subcommands: []*cli.Command{
			upgradeStartCommand(),
			upgradeVerbCommand("commit", "stop the old master of an upgrade left by 'upgrade start'", (*upgrade.Machine).Commit),
			upgradeVerbCommand("rollback", "return to the old master: its workers back, the new master stopped, the pid file restored", (*upgrade.Machine).Rollback),
			upgradeStatusCommand(),
		},
	}
}

// Defaults of the upgrade flags: what upgrade.New gives a zero Options
// field, except that --verify-for 0 means no verify period.
const (
	defaultFlavor       = "auto"
	defaultSpawnTimeout = 30 * time.Second
	defaultDrainTimeout = 30 * time.Second
	defaultVerifyFor    = 2 * time.Second
	defaultStopTimeout  = 10 * time.Second
)

func pidfileFlag() cli.Flag {
	return &cli.StringFlag{Name: "pidfile", Usage: "the master's pid file", EnvVars: envVars("pidfile"), Required: true}
}

func flavorFlag() cli.Flag {
	return &cli.StringFlag{Name: "flavor", Value: defaultFlavor, Usage: defaultFlavor + ", or one of " + strings.Join(upgrade.FlavorNames(), ", "), EnvVars: envVars("flavor")}
}

func checkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "check", Usage: "health check, repeatable: http://HOST:PORT/PATH, https://..., unix:/PATH.sock:/PATH, tcp://HOST:PORT, exec:CMD (run like --preflight)", EnvVars: envVars("check")},
		&cli.BoolFlag{Name: "check-insecure", Usage: "do not verify TLS certificates of https checks", EnvVars: envVars("check-insecure")},
		durationFlag("check-timeout", upgrade.DefaultCheckTimeout, "bound on one run of one check (an exec: check's process group is stopped at its end)"),
	}
}

// profileFlag is the hidden developer's flag --profile DIR (BATON_PROFILE):
// the verb writes a CPU profile, an execution trace and a timeline of its
// phases into DIR (see profile.go).
func profileFlag() cli.Flag {
	return &cli.StringFlag{Name: "profile", Usage: "write a CPU profile, an execution trace and a timeline of the command into `DIR`", EnvVars: []string{EnvProfile}, Hidden: true}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print the result as one JSON document on stdout, a refused command line too (schema: upgrade/schema/report.v1.json in the source); progress stays on stderr", EnvVars: envVars("json")}
}

func durationFlag(name string, def time.Duration, usage string) cli.Flag {
	return &cli.DurationFlag{Name: name, Value: def, Usage: usage, EnvVars: envVars(name)}
}

func stopTimeoutFlag() cli.Flag {
	return durationFlag("stop-timeout", defaultStopTimeout, "grace period of each step of stopping a master (graceful, fast, KILL)")
}

func upgradeStartCommand() *cli.Command {
	flags := []cli.Flag{pidfileFlag(), flavorFlag()}
	flags = append(flags, checkFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "preflight", Usage: "shell command that must succeed before anything is signalled, e.g. 'nginx -t' (sh -c, in a process group of its own; NOTIFY_SOCKET, WATCHDOG_*, LISTEN_* and BATON_* are not passed)", EnvVars: envVars("preflight")},
		durationFlag("preflight-timeout", upgrade.DefaultPreflightTimeout, "bound on the --preflight command: at its end the command's process group is stopped (TERM, KILL) and nothing is signalled (exit 2)"),
		&cli.IntFlag{Name: "workers", Usage: "workers the new master must have", DefaultText: "as many as the old", EnvVars: envVars("workers")},
		durationFlag("spawn-timeout", defaultSpawnTimeout, "time for the new master to be up, verified and healthy"),
		durationFlag("drain-timeout", defaultDrainTimeout, "time for the old workers to exit"),
		durationFlag("verify-for", defaultVerifyFor, "how long the checks must keep passing against the new generation; 0 for no verify period"),
		stopTimeoutFlag(),
		&cli.BoolFlag{Name: "commit", Usage: "commit after verify instead of stopping with both masters alive", EnvVars: envVars("commit")},
		&cli.BoolFlag{Name: "no-auto-rollback", Usage: "on a failed check, leave both masters as they are (exit 4) instead of rolling back", EnvVars: envVars("no-auto-rollback")},
		jsonFlag(),
		profileFlag(),
	)
	return &cli.Command{
		Name:      "start",
		Usage:     "start an upgrade: preflight, spawn, drain, verify (and commit with --commit)",
		ArgsUsage: " ",
		Description: `Sends USR2 to the master named by --pidfile once the preflight passes,
then checks, each within its timeout, that <pidfile>.oldbin (gunicorn:
<pidfile>.2) names the right masters, the new master is a child of the old
one, has its workers, holds the same listening sockets and passes the
checks; drains the old workers (WINCH, or TTOU where the master ignores
WINCH) and keeps checking for --verify-for. Any failure after USR2 rolls
back unless --no-auto-rollback. Without --commit both masters stay alive:
'baton upgrade commit' or 'baton upgrade rollback' finish it.

EXAMPLES:
   baton upgrade start --pidfile /run/nginx.pid --preflight '/usr/sbin/nginx -t' \
       --check http://127.0.0.1:8080/health
   baton upgrade start --pidfile /run/unicorn.pid --check tcp://127.0.0.1:8080 --commit
   BATON_PIDFILE=/run/app.pid baton upgrade start --workers 4 --json

` + exitCodesHelp,
		Flags:  flags,
		Action: machineAction(startOptions, (*upgrade.Machine).Start),
	}
}

// startOptions reads the flags of `upgrade start`.
func startOptions(c *cli.Context) (upgrade.Options, error) {
	opts, err := machineOptions(c)
	if err != nil {
		return opts, err
	}
	opts.Preflight = c.String("preflight")
	opts.PreflightTimeout = c.Duration("preflight-timeout")
	if opts.PreflightTimeout <= 0 {
		return opts, usageErrorf("upgrade start: --preflight-timeout %v: want a positive duration such as 60s", opts.PreflightTimeout)
	}
	opts.Workers = c.Int("workers")
	opts.SpawnTimeout = c.Duration("spawn-timeout")
	opts.DrainTimeout = c.Duration("drain-timeout")
	opts.VerifyFor = c.Duration("verify-for")
	// 0 is no verify period (so is a negative duration, as it always was);
	// upgrade.New would give a zero VerifyFor its default.
	opts.NoVerify = opts.VerifyFor <= 0
	opts.StopTimeout = c.Duration("stop-timeout")
	opts.Commit = c.Bool("commit")
	opts.NoAutoRollback = c.Bool("no-auto-rollback")
	return opts, nil
}

func upgradeVerbCommand(name, usage string, verb func(*upgrade.Machine, context.Context) (*upgrade.Report, error)) *cli.Command {
	flags := []cli.Flag{pidfileFlag(), flavorFlag()}
	flags = append(flags, checkFlags()...)
	flags = append(flags,
		stopTimeoutFlag(),
		durationFlag("spawn-timeout", defaultSpawnTimeout, "time for the old master's workers to come back (rollback)"),
		durationFlag("drain-timeout", defaultDrainTimeout, "time for old workers told to drain to exit before a rollback counts the ones still there as staying"),
		jsonFlag(),
		profileFlag(),
	)
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: " ",
		Description: `Resumes from the journal and from what it observes: it works after
'baton upgrade start' ended, after a crash of the orchestrator, or after the
masters changed behind its back (it says what it found).

EXAMPLES:
   baton upgrade ` + name + ` --pidfile /run/nginx.pid --check http://127.0.0.1/health
   baton upgrade ` + name + ` --pidfile /run/app.pid --json

` + exitCodesHelp,
		Flags:  flags,
		Action: machineAction(resumeOptions, verb),
	}
}

// resumeOptions reads the flags of `upgrade commit` and `upgrade rollback`.
func resumeOptions(c *cli.Context) (upgrade.Options, error) {
	opts, err := machineOptions(c)
	opts.StopTimeout = c.Duration("stop-timeout")
	opts.SpawnTimeout = c.Duration("spawn-timeout")
	opts.DrainTimeout = c.Duration("drain-timeout")
	return opts, err
}

func upgradeStatusCommand() *cli.Command {
	flags := []cli.Flag{pidfileFlag(), flavorFlag()}
	flags = append(flags, checkFlags()...)
	flags = append(flags, jsonFlag())
	return &cli.Command{
		Name:      "status",
		Usage:     "show masters, workers, listeners, pid files, journal and health; change nothing",
		ArgsUsage: " ",
		Description: `Exit status 0, or 4 when the state is inconsistent (the advice says what
to do), 2 when the pid file names no master.

EXAMPLES:
   baton upgrade status --pidfile /run/nginx.pid
   baton upgrade status --pidfile /run/app.pid --check http://127.0.0.1:8080/health --json`,
		Flags:  flags,
		Action: machineAction(statusOptions, (*upgrade.Machine).Status),
	}
}

// statusOptions reads the flags of `upgrade status`, which reports no
// progress: it takes no step.
func statusOptions(c *cli.Context) (upgrade.Options, error) {
	opts, err := machineOptions(c)
	opts.Progress = nil
	return opts, err
}

// machineAction is the Action of an upgrade verb: it reads the verb's
// options and runs it.
func machineAction(options func(*cli.Context) (upgrade.Options, error), verb func(*upgrade.Machine, context.Context) (*upgrade.Report, error)) cli.ActionFunc {
	return func(c *cli.Context) error {
		opts, err := options(c)
		if err != nil {
			return err
		}
		return runMachine(c, opts, verb)
	}
}

// machineOptions reads the flags every verb shares.
func machineOptions(c *cli.Context) (upgrade.Options, error) {
	if c.NArg() > 0 {
		return upgrade.Options{}, usageErrorf("%s: unexpected argument %q", commandName(c), c.Args().First())
	}
	opts := upgrade.Options{
		Pidfile: c.String("pidfile"),
		Flavor:  c.String("flavor"),
	}
	for _, spec := range c.StringSlice("check") {
		chk, err := upgrade.ParseCheck(spec)
		if err != nil {
			return opts, withCode(exitUsage, err)
		}
		chk.InsecureTLS = c.Bool("check-insecure")
		chk.Timeout = c.Duration("check-timeout")
		opts.Checks = append(opts.Checks, chk)
	}
	errw := c.App.ErrWriter
	if errw == nil {
		errw = os.Stderr
	}
	opts.Progress = func(s upgrade.Step) { fmt.Fprintf(errw, "baton: %s\n", s) }
	return opts, nil
}

// runMachine runs one verb with a context that SIGINT and SIGTERM cancel,
// prints the result and maps the error to an exit code.
func runMachine(c *cli.Context, opts upgrade.Options, verb func(*upgrade.Machine, context.Context) (*upgrade.Report, error)) error {
	errw := c.App.ErrWriter
	if errw == nil {
		errw = os.Stderr
	}
	in := watchInterrupts(c.Context, errw, commandName(c))
	defer in.Stop()
	opts.Hard = in.Hard
	var prof *profiler
	if dir := c.String("profile"); dir != "" {
		p, err := startProfile(dir)
		if err != nil {
			return withCode(exitUsage, err)
		}
		prof, opts.Span = p, p.span
	}
	m, err := upgrade.New(opts)
	if err != nil {
		if prof != nil {
			_ = prof.stop(nil)
		}
		return withCode(exitCode(err, false), err)
	}
	rep, err := verb(m, in.Soft)
	if got := in.Finish(); rep != nil {
		rep.Interrupted = got
	}
	if prof != nil {
		if perr := prof.stop(rep); perr != nil {
			fmt.Fprintf(errw, "baton: --profile: %v\n", perr)
		}
	}
	status := c.Command.Name == "status"
	switch {
	case err != nil:
		err = withCode(exitCode(err, !status), err)
	case status && rep != nil && rep.State == upgrade.Inconsistent:
		err = withCode(exitInconsistent, fmt.Errorf("upgrade status: inconsistent: %s", rep.Advice))
	}
	if c.Bool("json") {
		jsonOut(c).report(rep, err)
	} else if rep != nil {
		printReport(c.App.Writer, rep, status)
	}
	return err
}

// printReport writes the report for people.
func printReport(w io.Writer, r *upgrade.Report, full bool) {
	fmt.Fprintf(w, "state:    %s\n", r.State)
	fmt.Fprintf(w, "pidfile:  %s", r.Pidfile)
	if r.Flavor != "" {
		fmt.Fprintf(w, " (%s)", r.Flavor)
	}
	fmt.Fprintln(w)
	master := func(role string, m *upgrade.MasterObs) {
		if m == nil {
			return
		}
		fmt.Fprintf(w, "%s master: pid %d (%s), %d workers %v, binary %s\n", role, m.ID.PID, m.ID, len(m.Workers), m.Workers, m.Binary)
		if m.BinaryGone {
			fmt.Fprintf(w, "    binary replaced on disk — an upgrade is due\n")
		}
		if full {
			for _, l := range m.Listeners {
				fmt.Fprintf(w, "    listener fd %d %s %s (inode %d)\n", l.FD, l.Network, l.Addr, l.Inode)
			}
			if len(m.ChildMasters) > 0 {
				fmt.Fprintf(w, "    new master starting: %v\n", m.ChildMasters)
			}
		}
	}
	master("old", r.Old)
	master("new", r.New)
	if full {
		for _, f := range r.Files {
			switch {
			case !f.Exists:
				fmt.Fprintf(w, "file:     %s: absent\n", f.Path)
			case f.Err != "":
				fmt.Fprintf(w, "file:     %s: %s\n", f.Path, f.Err)
			case f.Master != nil:
				fmt.Fprintf(w, "file:     %s: pid %d (running)\n", f.Path, f.PID)
			default:
				fmt.Fprintf(w, "file:     %s: pid %d (not running)\n", f.Path, f.PID)
			}
		}
		if r.Journal != nil {
			fmt.Fprintf(w, "journal:  %s since %s (%d transitions), old %s, new %s\n", r.Journal.State, r.Journal.Updated.Format(time.RFC3339), len(r.Journal.Transitions), r.Journal.Old, r.Journal.New)
		} else {
			fmt.Fprintf(w, "journal:  none\n")
		}
		if r.LockHolder != 0 {
			fmt.Fprintf(w, "lock:     held by pid %d: an upgrade is running\n", r.LockHolder)
		}
	}
	for _, h := range r.Health {
		if h.OK {
			fmt.Fprintf(w, "health:   %s ok\n", h.Check)
		} else {
			fmt.Fprintf(w, "health:   %s FAILED: %s\n", h.Check, h.Error)
		}
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "found:    %s\n", f)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning:  %s\n", s)
	}
	if r.Advice != "" {
		fmt.Fprintf(w, "advice:   %s\n", r.Advice)
	}
}
