package main

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestDemoVersion(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{name: "demo-app answer", body: "version=v2 generation=3 pid=42\n", want: "v2"},
		{name: "health answer", body: "version=v1 ok\n", want: "v1"},
		{name: "version not first", body: "generation=1 version=v3\n", want: "v3"},
		{name: "only first line", body: "hello\nversion=v9\n", want: "?"},
		{name: "empty", body: "", want: "?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := demoVersion([]byte(tt.body)); got != tt.want {
				t.Errorf("demoVersion(%q) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestDemoExpect(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		ok     bool
	}{
		{name: "demo answer", status: 200, body: "version=v1 generation=1 pid=1\n", ok: true},
		{name: "server error", status: 500, body: "version=v1 unhealthy\n"},
		{name: "someone else", status: 200, body: "<html>welcome to nginx</html>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := demoExpect(tt.status, []byte(tt.body))
			if (err == nil) != tt.ok {
				t.Errorf("demoExpect(%d, %q) = %v, want ok=%v", tt.status, tt.body, err, tt.ok)
			}
		})
	}
}

func TestDemoChildEnv(t *testing.T) {
	in := []string{
		"PATH=/usr/bin", "HOME=/root", "BATON_COMMIT=1", "BATON_PIDFILE=/x",
		"DEMO_FAIL=1", "DEMO_VERSION=v9", "LISTEN_FDS=2", "LISTEN_PID=1",
		"NOTIFY_SOCKET=/run/systemd/notify", "SERVER_STARTER_PORT=80=3", "TMPDIR=/tmp",
	}
	got := demoChildEnv(in)
	want := []string{"PATH=/usr/bin", "HOME=/root", "TMPDIR=/tmp"}
	if !slices.Equal(got, want) {
		t.Errorf("demoChildEnv = %q, want %q", got, want)
	}
}

func TestDemoShort(t *testing.T) {
	got := demoShort([]string{"run", "--pidfile", "/tmp/d1/demo.pid", "--", "/usr/bin/baton", "demo-app"}, "/tmp/d1", "/usr/bin/baton")
	want := []string{"run", "--pidfile", "$DIR/demo.pid", "--", "baton", "demo-app"}
	if !slices.Equal(got, want) {
		t.Errorf("demoShort = %q, want %q", got, want)
	}
}

// TestDemoProcesses starts real processes, one with the marker and one
// without, and checks that only the marked one is found, and no longer once
// it has exited.
func TestDemoProcesses(t *testing.T) {
	marker := demoMarkerEnv + "=" + t.TempDir()
	start := func(env ...string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command("sleep", "60")
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd
	}
	marked := start("PATH=/usr/bin:/bin", marker)
	start("PATH=/usr/bin:/bin", marker+"-other")

	got := demoProcesses(marker)
	if !slices.Equal(got, []int{marked.Process.Pid}) {
		t.Fatalf("demoProcesses = %v, want [%d]", got, marked.Process.Pid)
	}
	if err := marked.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = marked.Wait()
	if got := demoProcesses(marker); len(got) != 0 {
		t.Errorf("demoProcesses after exit = %v, want none", got)
	}
}

func TestDemoLineWriter(t *testing.T) {
	var buf bytes.Buffer
	out := newDemoOut(&buf)
	w := &demoLineWriter{out: out, prefix: "| "}
	for _, p := range []string{"one\ntw", "o\n", "thr", "ee"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	if got, want := buf.String(), "| one\n| two\n| three\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// TestDemoOutNotTTY checks that the live counter, which redraws a line with
// carriage returns, stays off when the output is not a terminal.
func TestDemoOutNotTTY(t *testing.T) {
	var buf bytes.Buffer
	out := newDemoOut(&buf)
	out.live(func() string { return "LIVE" })
	out.linef("step %d", 1)
	out.live(nil)
	if got := buf.String(); got != "step 1\n" || strings.Contains(got, "\r") {
		t.Errorf("output %q, want only the step line", got)
	}
}

// TestDemoUsage checks that bad input is refused with exit 2 before the
// demo starts anything.
func TestDemoUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "extra argument", args: []string{"baton", "demo", "now"}},
		{name: "no workers", args: []string{"baton", "demo", "--workers", "0"}},
		{name: "no clients", args: []string{"baton", "demo", "--concurrency", "0"}},
		{name: "unknown flag", args: []string{"baton", "demo", "--fast"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := run(tt.args); code != exitUsage {
				t.Errorf("run(%q) = %d, want %d", tt.args, code, exitUsage)
			}
		})
	}
}
