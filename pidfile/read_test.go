package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// writeFile writes content to a fresh pid file in a private directory and
// returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.pid")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		want    int
		err     error
		message string // a substring of the error message
	}{
		{name: "ok", setup: func(t *testing.T) string { return writeFile(t, "4321\n") }, want: 4321},
		{
			name:    "missing",
			setup:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.pid") },
			err:     ErrMissing,
			message: "none.pid: missing",
		},
		{
			name:  "missing-is-not-exist",
			setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.pid") },
			err:   fs.ErrNotExist,
		},
		{name: "empty", setup: func(t *testing.T) string { return writeFile(t, "") }, err: ErrEmpty, message: "app.pid: empty"},
		{name: "malformed", setup: func(t *testing.T) string { return writeFile(t, "pid=12\n") }, err: ErrMalformed, message: `(found "pid=12\n")`},
		{name: "out-of-range", setup: func(t *testing.T) string { return writeFile(t, "1\n") }, err: ErrMalformed, message: "out of range"},
		{
			name:    "too-long",
			setup:   func(t *testing.T) string { return writeFile(t, "12"+strings.Repeat(" ", maxSize)) },
			err:     ErrMalformed,
			message: "longer than",
		},
		{
			name:    "directory",
			setup:   func(t *testing.T) string { return t.TempDir() },
			err:     ErrMalformed,
			message: "not a regular file",
		},
		{
			// A FIFO must not hang the reader (O_NONBLOCK).
			name: "fifo",
			setup: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "fifo.pid")
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			err:     ErrMalformed,
			message: "not a regular file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.setup(t)
			got, err := Read(p)
			if tt.err == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Read = %d, %v; want %d", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Read = %d, %v; want %v", got, err, tt.err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Path != p {
				t.Fatalf("error %#v does not name %s", err, p)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("message %q lacks %q", err, tt.message)
			}
		})
	}
}

// fakeProbe answers for one pid.
func fakeProbe(pid int, started time.Time, err error) Probe {
	return func(p int) (time.Time, error) {
		if p != pid {
			return time.Time{}, fmt.Errorf("fake probe: unexpected pid %d: %w", p, fs.ErrNotExist)
		}
		return started, err
	}
}

func TestReadLiveFakeProbe(t *testing.T) {
	const pid = 4321
	p := writeFile(t, strconv.Itoa(pid)+"\n")
	written := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, written, written); err != nil {
		t.Fatal(err)
	}
	errPerm := errors.New("permission denied")
	tests := []struct {
		name  string
		probe Probe
		err   error // nil: want pid
	}{
		{name: "started-before", probe: fakeProbe(pid, written.Add(-time.Minute), nil)},
		{name: "started-same-second", probe: fakeProbe(pid, written, nil)},
		{name: "within-tolerance", probe: fakeProbe(pid, written.Add(ReuseTolerance), nil)},
		{name: "reused", probe: fakeProbe(pid, written.Add(ReuseTolerance+time.Millisecond), nil), err: ErrReused},
		{name: "gone-not-exist", probe: fakeProbe(pid, time.Time{}, fmt.Errorf("procs: %w", fs.ErrNotExist)), err: ErrGone},
		{name: "gone-process-done", probe: fakeProbe(pid, time.Time{}, os.ErrProcessDone), err: ErrGone},
		{name: "gone-esrch", probe: fakeProbe(pid, time.Time{}, syscall.ESRCH), err: ErrGone},
		{name: "probe-fails", probe: fakeProbe(pid, time.Time{}, errPerm), err: errPerm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadLive(p, tt.probe)
			if tt.err == nil {
				if err != nil || got != pid {
					t.Fatalf("ReadLive = %d, %v; want %d", got, err, pid)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("ReadLive = %d, %v; want %v", got, err, tt.err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Path != p || e.PID != pid {
				t.Fatalf("error %#v does not name %s and pid %d", err, p, pid)
			}
			if errors.Is(err, ErrGone) && errors.Is(err, ErrReused) {
				t.Errorf("error is both gone and reused: %v", err)
			}
		})
	}
	t.Run("read-error-first", func(t *testing.T) {
		_, err := ReadLive(filepath.Join(t.TempDir(), "none.pid"), func(int) (time.Time, error) {
			t.Fatal("probe called for a missing file")
			return time.Time{}, nil
		})
		if !errors.Is(err, ErrMissing) {
			t.Fatalf("ReadLive of missing file: %v", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		_, err := ReadLive(writeFile(t, "x"), fakeProbe(pid, written, nil))
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("ReadLive of malformed file: %v", err)
		}
	})
}

// TestReadLiveRealProcesses uses the /proc probe (nil) on real processes.
func TestReadLiveRealProcesses(t *testing.T) {
	t.Run("alive", func(t *testing.T) {
		h := startHelper(t, "live")
		p := writeFile(t, strconv.Itoa(h.pid)+"\n")
		if got, err := ReadLive(p, nil); err != nil || got != h.pid {
			t.Fatalf("ReadLive = %d, %v; want %d", got, err, h.pid)
		}
	})
	t.Run("dead", func(t *testing.T) {
		h := startHelper(t, "live")
		h.kill(t)
		p := writeFile(t, strconv.Itoa(h.pid)+"\n")
		if _, err := ReadLive(p, nil); !errors.Is(err, ErrGone) {
			t.Fatalf("ReadLive of a dead pid: %v, want ErrGone", err)
		}
	})
	t.Run("zombie", func(t *testing.T) {
		h := startHelper(t, "live")
		if err := syscall.Kill(h.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitExitedNoReap(t, h.pid) // a zombie until h.kill reaps it
		p := writeFile(t, strconv.Itoa(h.pid)+"\n")
		if _, err := ReadLive(p, nil); !errors.Is(err, ErrGone) {
			t.Fatalf("ReadLive of a zombie: %v, want ErrGone", err)
		}
	})
	t.Run("started-after-file", func(t *testing.T) {
		// The file claims to have been written an hour ago; the helper
		// started now: its pid cannot be the one the writer meant.
		p := writeFile(t, "")
		h := startHelper(t, "live")
		if err := os.WriteFile(p, []byte(strconv.Itoa(h.pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		_, err := ReadLive(p, nil)
		if !errors.Is(err, ErrReused) {
			t.Fatalf("ReadLive of a younger process: %v, want ErrReused", err)
		}
		if !strings.Contains(err.Error(), "pid "+strconv.Itoa(h.pid)) {
			t.Errorf("message %q does not name pid %d", err, h.pid)
		}
	})
}

// waitExitedNoReap blocks until pid (our child) has exited, leaving it a
// zombie: waitid(P_PID, pid, WEXITED|WNOWAIT).
func waitExitedNoReap(t *testing.T, pid int) {
	t.Helper()
	const (
		pPID    = 1
		wExited = 0x4
		wNoWait = 0x1000000
	)
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])), wExited|wNoWait, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			t.Fatalf("waitid %d: %v", pid, errno)
		}
		return
	}
}
