// Command baton upgrades running Linux servers without dropping a request.
//
// It drives any master that speaks the nginx binary-upgrade signal protocol
// (nginx, unicorn, gunicorn, baton's own) through a checked state machine, and
// is itself such a master for programs that cannot upgrade themselves.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/upgrade"
	"github.com/batonhq/baton/upgrade/master"
)

// Exit codes, shared by every command; exitCodes says what each means.
const (
	exitOK           = 0
	exitFailed       = 1
	exitUsage        = 2
	exitBusy         = 3
	exitInconsistent = 4
)

// exitRow is one exit code: its name, what it means (one line, `quoted`
// for Markdown) and the sentinel errors that map to it.
type exitRow struct {
	code    int
	name    string
	meaning string
	from    []error
}

// exitCodes is the one table of exit codes. It drives exitCodesHelp (every
// command's --help), exitCode (the error -> code mapping) and README.md's
// "Exit codes" section (TestREADMEExitCodes keeps it in step).
var exitCodes = []exitRow{
	{code: exitOK, name: "ok", meaning: "done"},
	{code: exitFailed, name: "failed", meaning: "failed; an upgrade was rolled back, or a reload refused, and the old generation is serving",
		from: []error{upgrade.ErrRolledBack, upgrade.ErrNotReloaded}},
	{code: exitUsage, name: "usage", meaning: "bad usage or input, or interrupted before any signal; nothing was signalled or changed",
		from: []error{upgrade.ErrBadInput, upgrade.ErrNotRunning, upgrade.ErrPreflight, upgrade.ErrIllegalTransition, upgrade.ErrInterrupted,
			master.ErrConfig, master.ErrBadListen}},
	{code: exitBusy, name: "busy", meaning: "another upgrade holds the lock or is pending",
		from: []error{upgrade.ErrLocked, upgrade.ErrUpgradePending, pidfile.ErrRunning}},
	{code: exitInconsistent, name: "inconsistent", meaning: "failed and could not restore a clean state; `baton upgrade status` says what to do",
		from: []error{upgrade.ErrInconsistent}},
}

// exitCode maps err to the code of the first row of exitCodes that lists a
// sentinel err wraps. An error with none is 4 when signals may have been
// sent (mutating), 1 otherwise.
func exitCode(err error, mutating bool) int {
	for _, r := range exitCodes {
		for _, sentinel := range r.from {
			if errors.Is(err, sentinel) {
				return r.code
			}
		}
	}
	if mutating {
		return exitInconsistent
	}
	return exitFailed
}

// exitCodesHelp is the exit-code section of --help.
var exitCodesHelp = func() string {
	var b strings.Builder
	b.WriteString("EXIT CODES:")
	for _, r := range exitCodes {
		fmt.Fprintf(&b, "\n   %d  %s", r.code, strings.ReplaceAll(r.meaning, "`", `"`))
	}
	return b.String()
}()

// exitError carries the exit code a command wants; main prints the message
// on one line and exits with the code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so that main exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageErrorf is a bad-input error: exit 2, nothing touched.
func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "baton",
		Usage:                "upgrade running servers without dropping a request",
		Version:              readBuildInfo().Version,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		Description: `baton drives masters that speak the nginx binary-upgrade protocol
(USR2, WINCH, QUIT, HUP) through a checked upgrade: nginx, unicorn, gunicorn
and baton's own master, which runs any program that can take its listening
sockets from its parent.

EXAMPLES:
   baton run --pidfile /run/app.pid --listen 127.0.0.1:8080 --workers 2 -- ./server
   baton upgrade start --pidfile /run/nginx.pid --check http://127.0.0.1/health --commit
   baton upgrade status --pidfile /run/app.pid --json

` + exitCodesHelp,
		Commands: commands(),
		ExitErrHandler: func(*cli.Context, error) {
			// main reports errors and chooses the exit code.
		},
		CommandNotFound: func(c *cli.Context, name string) {
			notFound = unknownCommand(c, name)
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return withCode(exitUsage, err)
		},
	}
}

// notFound is the error for the unknown command CommandNotFound saw, if
// any.
var notFound error

func main() {
	profileStart = time.Now()
	os.Exit(run(os.Args))
}

// run executes the CLI and maps errors to exit codes.
func run(args []string) int {
	return runIO(args, os.Stdout, os.Stderr)
}

// runIO executes the CLI with args, printing on stdout and stderr, and
// returns the exit code. Under `baton upgrade ... --json` stdout holds one
// JSON document, also when the command line is refused (jsonOutput).
func runIO(args []string, stdout, stderr io.Writer) int {
	notFound = nil
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	js := newJSONOutput(args, stdout)
	if js != nil {
		app.Writer = stderr // help and usage text: not on the JSON
		app.Metadata = map[string]any{jsonOutputKey: js}
	}
	err := app.Run(args)
	if err == nil && notFound != nil {
		err = notFound
	}
	if err != nil {
		fmt.Fprintf(stderr, "baton: %v\n", err)
	}
	if js != nil {
		js.refused(err)
	}
	return errorCode(err)
}

// errorCode is the exit code of err: the one it carries, 2 for urfave/cli's
// usage errors, 1 for any other, 0 for none.
func errorCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case isUsageError(err):
		return exitUsage
	}
	return exitFailed
}
