package statusfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pidfile        string
		pid            int
		status, notify string
	}{
		{name: "plain", pidfile: "/run/app.pid", pid: 123,
			status: "/run/app.pid.123.status", notify: "/run/app.pid.123.notify"},
		{name: "relative", pidfile: "app.pid", pid: 7,
			status: "app.pid.7.status", notify: "app.pid.7.notify"},
		{name: "dots in the name", pidfile: "/run/a.b.pid.oldbin", pid: 4194304,
			status: "/run/a.b.pid.oldbin.4194304.status", notify: "/run/a.b.pid.oldbin.4194304.notify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Path(tc.pidfile, tc.pid); got != tc.status {
				t.Errorf("Path(%q, %d) = %q, want %q", tc.pidfile, tc.pid, got, tc.status)
			}
			if got := NotifyPath(tc.pidfile, tc.pid); got != tc.notify {
				t.Errorf("NotifyPath(%q, %d) = %q, want %q", tc.pidfile, tc.pid, got, tc.notify)
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := Path(filepath.Join(dir, "app.pid"), 42)
	want := Master{
		PID: 42, Start: 1234, Parent: 41, Generation: 3, Ready: true, UpgradePending: true,
		Draining: true, CrashLoop: true, Binary: "/usr/bin/baton", Dir: "/srv/app",
		Workers:   []Worker{{PID: 43, Generation: 3, State: "ready", Restarts: 1}, {Generation: 3, State: "backoff"}},
		Listeners: []Listener{{Name: "http", Network: "tcp", Addr: "127.0.0.1:8080", Inode: 99, FD: 3}},
		Updated:   time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	// A second write replaces the first whole: readers see one or the other.
	if err := Write(path, Master{PID: 42, Binary: strings.Repeat("x", 4096)}); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read = %+v, want %+v", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 whatever the umask", fi.Mode().Perm())
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != filepath.Base(path) {
		t.Errorf("directory holds %v, want only %s: a temporary file was left", ents, filepath.Base(path))
	}
}

// The JSON names are the protocol between two baton binaries of different
// releases (the old master and the new orchestrator): they must not move.
func TestWireNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	if err := Write(path, Master{PID: 1, Workers: []Worker{{PID: 2}}, Listeners: []Listener{{Name: "n"}}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"pid"`, `"start"`, `"parent"`, `"generation"`, `"ready"`, `"upgrade_pending"`,
		`"draining"`, `"crash_loop"`, `"binary"`, `"workers"`, `"listeners"`, `"updated"`, `"state"`, `"restarts"`,
		`"name"`, `"network"`, `"addr"`, `"inode"`, `"fd"`} {
		if !strings.Contains(string(data), key+":") {
			t.Errorf("status file lacks %s:\n%s", key, data)
		}
	}
	if strings.Contains(string(data), `"dir"`) {
		t.Errorf("an empty dir is written:\n%s", data)
	}
	if !strings.HasSuffix(string(data), "}\n") {
		t.Errorf("status file does not end in a newline:\n%s", data)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing", func(t *testing.T) {
		_, err := Read(filepath.Join(dir, "none"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		path := filepath.Join(dir, "bad")
		if err := os.WriteFile(path, []byte(`{"pid": "one"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.HasPrefix(err.Error(), "statusfile: ") {
			t.Errorf("err = %v, want a statusfile error naming %s", err, path)
		}
	})
}

func TestWriteAtomicError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no such dir", "j")
	err := writeAtomic(path, []byte("x"))
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "write" || pe.Path != path || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %#v, want *fs.PathError{Op: write, Path: %s} wrapping fs.ErrNotExist", err, path)
	}
	if strings.HasPrefix(err.Error(), "statusfile:") {
		t.Errorf("err = %v: the caller adds its package's prefix", err)
	}
	if err := Write(path, Master{}); err == nil || !strings.HasPrefix(err.Error(), "statusfile: write "+path+": ") {
		t.Errorf("Write err = %v, want \"statusfile: write %s: ...\"", err, path)
	}
}
