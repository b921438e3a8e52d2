package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/cmd/baton/internal/demo"
)

// demoCommand is `baton demo`: the whole product in half a minute, on
// loopback, in a temporary directory, with nothing but this binary. The demo
// itself is package demo; this wires its flags, output and exit status.
func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "show a zero-downtime upgrade, a commit and an automatic rollback under load",
		Description: `Starts "baton run" with 2 workers of a built-in demo app (v1) on a free
loopback port, puts it under load (keep-alive and new-connection clients),
upgrades it to v2 with "baton upgrade start" and "baton upgrade commit", then
tries a broken v3 whose health check fails, which "baton upgrade start" rolls
back by itself. It prints every command it runs and a report: requests served
and failed, each step's time, the version serving at the end. Everything it
started is stopped when it ends, also on Ctrl-C.

Exit status 0 when every step did what it should and no request failed, 1
otherwise.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "demo-app workers under the master", EnvVars: []string{"BATON_WORKERS"}},
			&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "load clients per mode (keep-alive and new-connection)", EnvVars: []string{"BATON_CONCURRENCY"}},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout (progress goes to stderr)", EnvVars: []string{"BATON_JSON"}},
		},
		Action: demoAction,
	}
}

func demoAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("demo: takes no arguments, got %q", c.Args().First())
	}
	if c.Int("workers") < 1 || c.Int("concurrency") < 1 {
		return usageErrorf("demo: --workers and --concurrency must be at least 1")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: find own executable: %w", err)
	}
	// SIGPIPE too: with its output gone (`baton demo | head`) the demo must
	// still stop what it started, not die of the signal Go raises on a
	// write to a closed stdout.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()

	progress := os.Stdout
	if c.Bool("json") {
		progress = os.Stderr
	}
	rep, err := demo.Run(ctx, demo.Options{
		Exe:         exe,
		Workers:     c.Int("workers"),
		Concurrency: c.Int("concurrency"),
		Progress:    progress,
		Live:        isTerminal(progress),
		Env:         os.Environ(),
	})
	// Everything is stopped: from now on a closed output only fails the
	// writes (EPIPE) instead of killing the process with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	if werr := writeDemoReport(rep, c.Bool("json"), progress); werr != nil && err == nil {
		err = fmt.Errorf("demo: write report: %w", werr)
	}
	if err != nil {
		return withCode(exitFailed, err)
	}
	return nil
}

// writeDemoReport prints the report: as JSON on stdout, or as text after
// the progress.
func writeDemoReport(rep *demo.Report, asJSON bool, progress io.Writer) error {
	if !asJSON {
		return rep.WriteText(progress)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
