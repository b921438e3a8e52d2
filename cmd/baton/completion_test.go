package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// envTestAsBaton makes the test binary run as baton (see TestMain): the
// completion scripts run the baton being completed.
const envTestAsBaton = "BATON_TEST_AS_BATON"

func TestMain(m *testing.M) {
	if os.Getenv(envTestAsBaton) == "1" {
		os.Exit(run(os.Args))
	}
	os.Exit(m.Run())
}

// TestCompletionUsage: one shell of bash, zsh or fish, else exit 2.
func TestCompletionUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{name: "bash", args: []string{"bash"}, want: exitOK},
		{name: "zsh", args: []string{"zsh"}, want: exitOK},
		{name: "fish", args: []string{"fish"}, want: exitOK},
		{name: "none", want: exitUsage},
		{name: "unknown-shell", args: []string{"tcsh"}, want: exitUsage},
		{name: "two", args: []string{"bash", "zsh"}, want: exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newApp()
			var stdout, stderr bytes.Buffer
			app.Writer, app.ErrWriter = &stdout, &stderr
			err := app.Run(append([]string{"baton", "completion"}, tc.args...))
			code := exitOK
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("completion %v: exit %d (%v), want %d", tc.args, code, err, tc.want)
			}
			if code == exitOK && !strings.Contains(stdout.String(), "baton") {
				t.Errorf("completion %v printed no script:\n%s", tc.args, stdout.String())
			}
		})
	}
}

// completionScript writes `baton completion shell` to a file and returns
// its path.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeCompletion(&b, newApp(), shell); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "baton."+shell)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBashCompletion sources the bash script in a real bash, checks that it
// registers itself for baton, and completes command lines with this test
// binary running as baton: commands, verbs, flags and completion's shells.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script := completionScript(t, "bash")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		words []string // the last one is being completed
		want  []string
		not   []string
	}{
		{name: "command", words: []string{"up"}, want: []string{"upgrade"}, not: []string{"run"}},
		{name: "all-commands", words: []string{""}, want: []string{"run", "upgrade", "demo", "version", "completion", "man"}, not: []string{"demo-app"}},
		{name: "verb", words: []string{"upgrade", "st"}, want: []string{"start", "status"}, not: []string{"commit"}},
		{name: "flag", words: []string{"upgrade", "start", "--pid"}, want: []string{"--pidfile"}},
		{name: "shell", words: []string{"completion", ""}, want: []string{"bash", "zsh", "fish"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			words := append([]string{self}, tc.words...)
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
			}
			prog := `set -e
. "$1"
complete -p baton
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_baton
printf 'reply:%s\n' "${COMPREPLY[@]}"
`
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prog, "bash", script)
			cmd.Env = append(os.Environ(), envTestAsBaton+"=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "-F _baton baton") {
				t.Errorf("the script does not register _baton for baton:\n%s", out)
			}
			var got []string
			for _, l := range strings.Split(string(out), "\n") {
				if r, ok := strings.CutPrefix(l, "reply:"); ok && r != "" {
					got = append(got, r)
				}
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("completing %q: %v lacks %q", tc.words, got, w)
				}
			}
			for _, w := range tc.not {
				if slices.Contains(got, w) {
					t.Errorf("completing %q: %v has %q", tc.words, got, w)
				}
			}
		})
	}
}

// TestZshFishCompletionSyntax: the zsh and fish scripts parse (-n) in the
// shells, where they are installed.
func TestZshFishCompletionSyntax(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			path, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s is not installed", shell)
			}
			if out, err := exec.Command(path, "-n", completionScript(t, shell)).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}
