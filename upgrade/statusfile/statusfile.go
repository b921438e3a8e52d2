package statusfile

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Master is what a baton master publishes about itself. The zero value is a
// master with no workers, no listeners and nothing ready.
type Master struct {
	PID            int        `json:"pid"`
	Start          uint64     `json:"start"`  // procs.Identity.Start
	Parent         int        `json:"parent"` // the old master this one was started by, 0 if none
	Generation     int        `json:"generation"`
	Ready          bool       `json:"ready"`
	UpgradePending bool       `json:"upgrade_pending"`
	Draining       bool       `json:"draining"` // WINCH received: no workers wanted
	CrashLoop      bool       `json:"crash_loop"`
	Binary         string     `json:"binary"`
	Dir            string     `json:"dir,omitempty"`
	Workers        []Worker   `json:"workers"`
	Listeners      []Listener `json:"listeners"`
	// Reloads counts the configuration reloads (HUP) the master handled,
	// accepted or refused; ReloadError says why the last one was refused
	// ("" when it was accepted: a new generation is starting or serving).
	// The orchestrator's configuration reload (upgrade.Machine.Reload)
	// waits for the count to move and fails at once on a refusal.
	Reloads     int    `json:"reloads"`
	ReloadError string `json:"reload_error,omitempty"`
	// Goroutines is the master's runtime.NumGoroutine() as of the last
	// event it handled (a signal, a worker's exit or readiness): it looks
	// at its status after each and rewrites the file when anything, this
	// count included, changed. An idle master does not refresh it. For
	// leak watching (integration's TestSoak), not for decisions.
	Goroutines int       `json:"goroutines"`
	Updated    time.Time `json:"updated"`
}

// Worker is one worker of a baton master.
type Worker struct {
	PID        int    `json:"pid"`
	Generation int    `json:"generation"`
	State      string `json:"state"` // "starting", "ready", "stopping", "backoff"
	Restarts   int    `json:"restarts"`
}

// Listener is one listening socket of a baton master.
type Listener struct {
	Name    string `json:"name,omitempty"`
	Network string `json:"network"`
	Addr    string `json:"addr"`
	Inode   uint64 `json:"inode"`
	FD      int    `json:"fd"`
}

// Path is where the baton master pid publishes its status, given the pid
// file it was configured with (not the .oldbin it may have been renamed to).
func Path(pidfile string, pid int) string { return base(pidfile, pid) + ".status" }

// NotifyPath is where the baton master pid listens for its workers'
// sd_notify(3) messages, beside its status file (Path).
func NotifyPath(pidfile string, pid int) string { return base(pidfile, pid) + ".notify" }

func base(pidfile string, pid int) string { return pidfile + "." + strconv.Itoa(pid) }

// Read reads a status file written by Write. A missing file is an error
// wrapping fs.ErrNotExist.
func Read(path string) (Master, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Master{}, fmt.Errorf("statusfile: %w", err)
	}
	return Decode(path, data)
}

// Decode decodes the content of the status file at path, for a reader
// that read it its own way (the orchestrator, as root, through
// pidfile.Options.ReadState: no symlink, nothing another user could have
// written).
func Decode(path string, data []byte) (Master, error) {
	var s Master
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("statusfile: %s: %w", path, err)
	}
	return s, nil
}

// Write writes s to path atomically (writeAtomic).
func Write(path string, s Master) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("statusfile: encode %s: %w", path, err)
	}
	if err := writeAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("statusfile: %w", err)
	}
	return nil
}

// writeAtomic writes data to a temporary file beside path, with mode 0644
// whatever the umask, and renames it over path, so readers never see a
// partial file. It does not fsync (see the package doc); the orchestrator's
// journal is written with it too. Its error is an *fs.PathError with Op
// "write" and Path path, without a package prefix: the caller's package
// adds its own.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		// fchmod(2): unlike the mode given to open(2), the umask does not
		// apply.
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}
