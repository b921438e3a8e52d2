package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestManPage: baton(1) has every visible command, each with its flags,
// and every exit code; man renders it without a warning (what lintian
// checks), where man is installed.
func TestManPage(t *testing.T) {
	app := newApp()
	var b bytes.Buffer
	if err := writeManPage(&b, app); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if !strings.HasPrefix(page, ".TH BATON 1 ") {
		t.Errorf("the page does not start with .TH BATON 1:\n%.200s", page)
	}
	var walk func(parent string, cmds []*cli.Command)
	walk = func(parent string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := parent + " " + c.Name
			if !strings.Contains(page, "\n.SS "+roffEscape(name)+"\n") {
				t.Errorf("no section for %q", name)
			}
			for _, f := range c.VisibleFlags() {
				if !strings.Contains(page, `\fB`+roffEscape("--"+f.Names()[0])) {
					t.Errorf("%s: no --%s", name, f.Names()[0])
				}
			}
			walk(name, c.VisibleCommands())
		}
	}
	walk("baton", app.VisibleCommands())
	for _, r := range exitCodes {
		if !strings.Contains(page, "\n.TP\n.B "+string(rune('0'+r.code))+"\n") {
			t.Errorf("no exit code %d", r.code)
		}
	}
	if strings.Contains(page, "\n.SS baton demo\\-app\n") {
		t.Errorf("the hidden demo-app command is in the page")
	}

	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man is not installed")
	}
	path := filepath.Join(t.TempDir(), "baton.1")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", "-Tutf8", path)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_FORMATTING=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("man --warnings: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "baton upgrade start") {
		t.Errorf("the rendered page lacks \"baton upgrade start\":\n%.500s", stdout.String())
	}
}

// TestRoffLine: text never turns into a request and backslashes stay.
func TestRoffLine(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{name: "plain", in: "a b", want: "a b"},
		{name: "dot", in: ".oldbin", want: `\&.oldbin`},
		{name: "quote", in: "'x'", want: `\&'x'`},
		{name: "empty", in: "", want: `\&`},
		{name: "backslash", in: `a \ b`, want: `a \e b`},
		{name: "hyphen", in: "--pidfile", want: `\-\-pidfile`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := roffLine(tc.in); got != tc.want {
				t.Errorf("roffLine(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
