package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/upgrade/master"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite README.md's \"Exit codes\" section from the exitCodes table")

// exitCodesMarkdown is README.md's "Exit codes" section after its heading.
func exitCodesMarkdown() string {
	var b strings.Builder
	b.WriteString("| code | name | meaning |\n| --- | --- | --- |\n")
	for _, r := range exitCodes {
		fmt.Fprintf(&b, "| %d | %s | %s |\n", r.code, r.name, r.meaning)
	}
	return b.String()
}

// TestREADMEExitCodes keeps README.md's "Exit codes" section in step with
// the exitCodes table; `go test -run READMEExitCodes -update-readme
// ./cmd/baton` rewrites it.
func TestREADMEExitCodes(t *testing.T) {
	const path, heading = "../../README.md", "\n## Exit codes\n\n"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, heading)
	if start < 0 {
		t.Fatalf("%s has no %q heading", path, strings.TrimSpace(heading))
	}
	start += len(heading)
	end := strings.Index(readme[start:], "\n## ")
	if end < 0 {
		end = len(readme) - start
	}
	got, want := readme[start:start+end], exitCodesMarkdown()
	if *updateREADME {
		readme = readme[:start] + want + readme[start+end:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("%s's exit codes are out of step with exitCodes; run `go test -run READMEExitCodes -update-readme ./cmd/baton`\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestExitCodesTable: the codes are 0..4 in order, every sentinel is listed
// once, maps to its row's code, and --help lists every row.
func TestExitCodesTable(t *testing.T) {
	seen := map[error]int{}
	for i, r := range exitCodes {
		if r.code != i || r.name == "" || r.meaning == "" {
			t.Errorf("row %d: code %d, name %q, meaning %q", i, r.code, r.name, r.meaning)
		}
		if !strings.Contains(exitCodesHelp, fmt.Sprintf("\n   %d  ", r.code)) {
			t.Errorf("--help lacks code %d:\n%s", r.code, exitCodesHelp)
		}
		for _, s := range r.from {
			if c, dup := seen[s]; dup {
				t.Errorf("%v is listed for %d and %d", s, c, r.code)
			}
			seen[s] = r.code
			for _, mutating := range []bool{false, true} {
				if got := exitCode(fmt.Errorf("context: %w", s), mutating); got != r.code {
					t.Errorf("exitCode(%v, mutating=%v) = %d, want %d", s, mutating, got, r.code)
				}
			}
		}
	}
	if strings.Contains(exitCodesHelp, "`") {
		t.Errorf("--help shows Markdown quotes:\n%s", exitCodesHelp)
	}
}

// TestRunExitCodes maps what master.Run returns.
func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{name: "config", err: fmt.Errorf("%w: x", master.ErrConfig), want: exitUsage},
		{name: "listen", err: fmt.Errorf("%w: x", master.ErrBadListen), want: exitUsage},
		{name: "running", err: &pidfile.Error{Path: "p", PID: 42, Err: pidfile.ErrRunning}, want: exitBusy},
		{name: "other", err: errors.New("x"), want: exitFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err, false); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// TestFlagEnvVars: every flag of run, upgrade and version is set by
// BATON_ and its name in upper case, as README.md says.
func TestFlagEnvVars(t *testing.T) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				name := f.Names()[0]
				ev, ok := f.(interface{ GetEnvVars() []string })
				if !ok || !slices.Equal(ev.GetEnvVars(), envVars(name)) {
					t.Errorf("%s%s --%s: variables %v, want %v", prefix, c.Name, name, ev.GetEnvVars(), envVars(name))
				}
			}
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", []*cli.Command{runCommand(), upgradeCommand(), reloadCommand(), versionCommand()})
}

// captureOptions runs cmd with args, its action replaced by read, and
// returns the exit code and stderr.
func captureOptions(t *testing.T, cmd *cli.Command, read func(*cli.Context) error, args ...string) (int, string) {
	t.Helper()
	cmd.Action = read
	app := newApp()
	app.Commands = []*cli.Command{cmd}
	var stdout, stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stdout, &stderr
	err := app.Run(append([]string{"baton", cmd.Name}, args...))
	if err == nil {
		return exitOK, stderr.String()
	}
	fmt.Fprintf(&stderr, "baton: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code, stderr.String()
	}
	if isUsageError(err) {
		return exitUsage, stderr.String()
	}
	return exitFailed, stderr.String()
}
