package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

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
