package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestResolveVersion: -ldflags wins, then the go command's module version
// (go install …@v1.2.3), else "dev"; "(devel)" names no version.
func TestResolveVersion(t *testing.T) {
	for _, tc := range []struct {
		name, linked, module, want string
	}{
		{name: "ldflags", linked: "v1.2.3", module: "v1.2.2", want: "v1.2.3"},
		{name: "go-install", module: "v1.2.3", want: "v1.2.3"},
		{name: "pseudo-version", module: "v0.0.0-20251203070100-2bb8d3a1b2c3", want: "v0.0.0-20251203070100-2bb8d3a1b2c3"},
		{name: "work-tree", module: "(devel)", want: devVersion},
		{name: "no-build-info", want: devVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolveVersion(tc.linked, tc.module); got != tc.want {
				t.Errorf("resolveVersion(%q, %q) = %q, want %q", tc.linked, tc.module, got, tc.want)
			}
		})
	}
}

// TestVersionFlagAndCommand: `baton --version`, `baton -v` and `baton
// version` all print the version this binary resolves, and --json names it.
func TestVersionFlagAndCommand(t *testing.T) {
	saved := version
	t.Cleanup(func() { version = saved })
	version = "v9.8.7-test"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "flag", args: []string{"--version"}, want: "baton version v9.8.7-test\n"},
		{name: "short-flag", args: []string{"-v"}, want: "baton version v9.8.7-test\n"},
		{name: "command", args: []string{"version"}, want: "baton v9.8.7-test "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newApp()
			var stdout, stderr bytes.Buffer
			app.Writer, app.ErrWriter = &stdout, &stderr
			if err := app.Run(append([]string{"baton"}, tc.args...)); err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			if !strings.HasPrefix(stdout.String(), tc.want) {
				t.Errorf("%v printed %q, want it to start with %q", tc.args, stdout.String(), tc.want)
			}
		})
	}
	app := newApp()
	var stdout bytes.Buffer
	app.Writer = &stdout
	if err := app.Run([]string{"baton", "version", "--json"}); err != nil {
		t.Fatal(err)
	}
	var b buildInfo
	if err := json.Unmarshal(stdout.Bytes(), &b); err != nil || b.Version != "v9.8.7-test" {
		t.Errorf("version --json = %q (%v), want version v9.8.7-test", stdout.String(), err)
	}
}

// TestUnknownCommand: an unknown command is a usage error (exit 2) naming
// the closest command at its level, or none when nothing is similar, and
// the help to read.
func TestUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "top", args: []string{"upgarde"}, want: `unknown command "upgarde" (did you mean "upgrade"?); see 'baton --help'`},
		{name: "verb", args: []string{"upgrade", "strat"}, want: `unknown command "strat" (did you mean "start"?); see 'baton upgrade --help'`},
		{name: "nothing-similar", args: []string{"xqzw"}, want: `unknown command "xqzw"; see 'baton --help'`},
		{name: "hidden-help", args: []string{"help", "upgarde"}, want: `unknown command "help"; see 'baton --help'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() { notFound = nil })
			app := newApp()
			var stdout, stderr bytes.Buffer
			app.Writer, app.ErrWriter = &stdout, &stderr
			if err := app.Run(append([]string{"baton"}, tc.args...)); err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			if notFound == nil {
				t.Fatalf("%v: no unknown-command error", tc.args)
			}
			if got := notFound.Error(); got != tc.want {
				t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
			}
			var ee *exitError
			if !errors.As(notFound, &ee) || ee.code != exitUsage {
				t.Errorf("%v: %#v, want exit %d", tc.args, notFound, exitUsage)
			}
		})
	}
}
