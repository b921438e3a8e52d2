package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScriptsInitdStalePidfile: the init script must not take a process for
// DAEMON because its command line happens to name it, nor a process that
// started after the pid file was written (the master died, its pid was
// recycled). Such a pid file gets LSB status 1 (dead, pid file exists) and
// no signal from stop. A genuine master (DAEMON's executable, started before
// its pid file) still reads as running and gets stop's signals: the checks
// are not a refusal of everything.
func TestScriptsInitdStalePidfile(t *testing.T) {
	ctx := testContext(t)
	o := ownerOf(t)
	script := filepath.Join(initdRoot(t), "init.d", "baton")
	self, err := os.Executable() // the witness's executable
	if err != nil {
		t.Fatal(err)
	}
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	hourAgo := time.Now().Add(-time.Hour)

	// An unrelated sleep whose argv[0] is the daemon's name.
	sleeper := exec.Command(sleepPath, "300")
	sleeper.Args[0] = filepath.Base(batonBin)
	sleeper.Env = append(os.Environ(), o.marker)
	if _, err := startManaged(sleeper); err != nil {
		t.Fatal(err)
	}
	o.adopt(sleeper.Process.Pid)

	for _, tc := range []struct {
		name    string
		daemon  string
		target  func(t *testing.T) (pid int, record string) // record "" when the target cannot record
		mtime   time.Time                                   // zero: written now, after the target started
		status  int
		signals string // what stop must have delivered, one per line
	}{
		{name: "sleep-named-like-daemon-old-pidfile", daemon: batonBin, mtime: hourAgo, status: 1,
			target: func(*testing.T) (int, string) { return sleeper.Process.Pid, "" }},
		{name: "other-exe-argv-names-daemon", daemon: batonBin, status: 1,
			target: func(t *testing.T) (int, string) {
				return initdWitness(ctx, t, o, filepath.Join(t.TempDir(), "baton-witness.record"))
			}},
		{name: "daemon-exe-started-after-pidfile", daemon: self, mtime: hourAgo, status: 1,
			target: func(t *testing.T) (int, string) {
				return initdWitness(ctx, t, o, filepath.Join(t.TempDir(), "witness.record"))
			}},
		{name: "genuine-master", daemon: self, status: 0, signals: "QUIT\n",
			target: func(t *testing.T) (int, string) {
				return initdWitness(ctx, t, o, filepath.Join(t.TempDir(), "witness.record"))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid, record := tc.target(t)
			pidfile := filepath.Join(t.TempDir(), "app.pid")
			writeFile(t, pidfile, strconv.Itoa(pid)+"\n", 0o644)
			if !tc.mtime.IsZero() {
				if err := os.Chtimes(pidfile, tc.mtime, tc.mtime); err != nil {
					t.Fatal(err)
				}
			}
			defaults := filepath.Join(t.TempDir(), "defaults")
			writeFile(t, defaults, "NAME=app\nDAEMON="+initdShellWord(tc.daemon)+"\nPIDFILE="+initdShellWord(pidfile)+
				"\nSTOP_TIMEOUT=1\nSTOP_SIGNALS='QUIT KILL'\n", 0o644)
			run := func(action string) (int, string) {
				cmd := exec.CommandContext(ctx, "/bin/sh", script, action)
				cmd.Env = append(os.Environ(), o.marker, initdEnvDefaults+"="+defaults)
				out, err := initdCombined(cmd)
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return ee.ExitCode(), string(out)
				} else if err != nil {
					t.Fatalf("init script %s: %v", action, err)
				}
				return 0, string(out)
			}
			if code, out := run("status"); code != tc.status {
				t.Errorf("status: exit %d, want %d\n%s", code, tc.status, out)
			}
			code, out := run("stop")
			if code != 0 {
				t.Errorf("stop: exit %d, want 0\n%s", code, out)
			}
			if tc.signals == "" {
				if !strings.Contains(out, "not running") {
					t.Errorf("stop did not say not running:\n%s", out)
				}
				if !alive(pid) {
					t.Errorf("stop killed %d, which is not the master", pid)
				}
			}
			if record != "" {
				data, err := os.ReadFile(record)
				if err != nil {
					t.Fatal(err)
				}
				if string(data) != tc.signals {
					t.Errorf("%d received %q from stop, want %q", pid, data, tc.signals)
				}
			}
		})
	}
}
