package demo

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
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
			if got := version([]byte(tt.body)); got != tt.want {
				t.Errorf("version(%q) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestExpect(t *testing.T) {
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
			err := expect(tt.status, []byte(tt.body))
			if (err == nil) != tt.ok {
				t.Errorf("expect(%d, %q) = %v, want ok=%v", tt.status, tt.body, err, tt.ok)
			}
		})
	}
}

func TestChildEnv(t *testing.T) {
	in := []string{
		"PATH=/usr/bin", "HOME=/root", "BATON_COMMIT=1", "BATON_PIDFILE=/x",
		"DEMO_FAIL=1", "DEMO_VERSION=v9", "LISTEN_FDS=2", "LISTEN_PID=1",
		"NOTIFY_SOCKET=/run/systemd/notify", "SERVER_STARTER_PORT=80=3", "TMPDIR=/tmp",
	}
	got := childEnv(in)
	want := []string{"PATH=/usr/bin", "HOME=/root", "TMPDIR=/tmp"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv = %q, want %q", got, want)
	}
}

func TestShort(t *testing.T) {
	got := short([]string{"run", "--pidfile", "/tmp/d1/demo.pid", "--", "/usr/bin/baton", "demo-app"}, "/tmp/d1", "/usr/bin/baton")
	want := []string{"run", "--pidfile", "$DIR/demo.pid", "--", "baton", "demo-app"}
	if !slices.Equal(got, want) {
		t.Errorf("short = %q, want %q", got, want)
	}
}

// TestExpand checks that the table's placeholders become the run's values
// and show again as $DIR and "baton" in the progress.
func TestExpand(t *testing.T) {
	d := &demo{dir: "/tmp/d1", addr: "127.0.0.1:8080", opts: Options{Exe: "/usr/bin/baton", Workers: 3}}
	got := d.expand(masterArgs)
	want := []string{"run", "--pidfile", "/tmp/d1/demo.pid", "--listen", "127.0.0.1:8080",
		"--workers", "3", "--ready", "notify", "--envfile", "/tmp/d1/demo.env",
		"--stop-timeout", "5s", "--", "/usr/bin/baton", "demo-app"}
	if !slices.Equal(got, want) {
		t.Errorf("expand(masterArgs) = %q, want %q", got, want)
	}
	if got, want := d.display(d.expand(startArgs)), "baton upgrade start --pidfile $DIR/demo.pid --check http://127.0.0.1:8080/health"; got != want {
		t.Errorf("display(startArgs) = %q, want %q", got, want)
	}
}

// TestVerdict runs each row of the script through the checks with what a
// good and a bad outcome look like, so that a row whose check is wrong or
// missing shows here rather than in a half-minute end-to-end run.
func TestVerdict(t *testing.T) {
	const v1, v2, v3 = 101, 102, 103
	only := func(v string) map[string]int { return map[string]int{v: 20} }
	tests := []struct {
		name    string
		row     int
		serving int // the master serving before the step
		code    int
		seen    observed
		ok      bool
		note    string // a prefix of the note
	}{
		{name: "v2 started", row: 0, serving: v1, seen: observed{current: v2, oldbin: v1}, ok: true, note: "new master 102 serves v2, old master 101 parked"},
		{name: "v2 start failed", row: 0, serving: v1, code: 1, seen: observed{current: v1}, note: "exit 1, want 0"},
		{name: "v2 not parked", row: 0, serving: v1, seen: observed{current: v1}, note: "pid file 101 and .oldbin 0, want a new master and 101 parked"},
		{name: "committed", row: 1, serving: v2, seen: observed{current: v2, versions: only("v2")}, ok: true, note: "old master 101 gone"},
		{name: "oldbin left", row: 1, serving: v2, seen: observed{current: v2, oldbin: v1, versions: only("v2")}, note: "pid file 102, .oldbin 101; want 102 and none"},
		{name: "v1 still answers", row: 1, serving: v2, seen: observed{current: v2, versions: map[string]int{"v1": 1, "v2": 19}}, note: "serving v1: 1, v2: 19, want v2 only"},
		{name: "rolled back", row: 2, serving: v2, code: 1, seen: observed{current: v2, versions: only("v2")}, ok: true, note: "exit 1: health check failed, rolled back"},
		{name: "v3 kept", row: 2, serving: v2, code: 0, seen: observed{current: v3, versions: only("v3")}, note: "exit 0, want 1 (rolled back)"},
		{name: "v3 answers after rollback", row: 2, serving: v2, code: 1, seen: observed{current: v2, versions: only("v3")}, note: "serving v3: 20, want v2 only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &demo{rep: &Report{}, serving: tt.serving, parked: v1}
			note, ok := d.verdict(script[tt.row], tt.code, tt.seen)
			if ok != tt.ok || !strings.HasPrefix(note, tt.note) {
				t.Errorf("verdict = %q, %v; want %q..., %v", note, ok, tt.note, tt.ok)
			}
			if rolled := tt.row == 2 && tt.ok; d.rep.RolledBack != rolled {
				t.Errorf("report rolled back = %v, want %v", d.rep.RolledBack, rolled)
			}
		})
	}
}

func TestLineWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &lineWriter{out: newProgress(&buf, false), prefix: "| "}
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

// TestProgressNotTTY checks that the live counter, which redraws a line
// with carriage returns, stays off when the output is not a terminal.
func TestProgressNotTTY(t *testing.T) {
	var buf bytes.Buffer
	out := newProgress(&buf, false)
	out.live(func() string { return "LIVE" })
	out.linef("step %d", 1)
	out.live(nil)
	if got := buf.String(); got != "step 1\n" || strings.Contains(got, "\r") {
		t.Errorf("output %q, want only the step line", got)
	}
}
