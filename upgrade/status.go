package upgrade

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// MasterStatus is what a baton master publishes about itself in its status
// file, for `baton upgrade` and `baton upgrade status`. The master rewrites it
// atomically on every change.
type MasterStatus struct {
	PID            int              `json:"pid"`
	Start          uint64           `json:"start"`  // procs.Identity.Start
	Parent         int              `json:"parent"` // the old master this one was started by, 0 if none
	Generation     int              `json:"generation"`
	Ready          bool             `json:"ready"`
	UpgradePending bool             `json:"upgrade_pending"`
	Draining       bool             `json:"draining"` // WINCH received: no workers wanted
	CrashLoop      bool             `json:"crash_loop"`
	Binary         string           `json:"binary"`
	Dir            string           `json:"dir,omitempty"`
	Workers        []WorkerStatus   `json:"workers"`
	Listeners      []ListenerStatus `json:"listeners"`
	Updated        time.Time        `json:"updated"`
}

// WorkerStatus is one worker of a baton master.
type WorkerStatus struct {
	PID        int    `json:"pid"`
	Generation int    `json:"generation"`
	State      string `json:"state"` // "starting", "ready", "stopping", "backoff"
	Restarts   int    `json:"restarts"`
}

// ListenerStatus is one listening socket of a baton master.
type ListenerStatus struct {
	Name    string `json:"name,omitempty"`
	Network string `json:"network"`
	Addr    string `json:"addr"`
	Inode   uint64 `json:"inode"`
	FD      int    `json:"fd"`
}

// StatusPath is where the baton master pid publishes its status, given the pid
// file it was configured with (not the .oldbin it may have been renamed to).
func StatusPath(pidfile string, pid int) string {
	return pidfile + "." + strconv.Itoa(pid) + ".status"
}

// ReadStatus reads a status file written by WriteStatus.
func ReadStatus(path string) (MasterStatus, error) {
	var s MasterStatus
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("upgrade: read status: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("upgrade: status %s: %w", path, err)
	}
	return s, nil
}

// WriteStatus writes s to path atomically (temporary file and rename).
func WriteStatus(path string, s MasterStatus) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("upgrade: encode status: %w", err)
	}
	return writeAtomic(path, append(data, '\n'))
}

// writeAtomic writes data to a temporary file beside path and renames it
// over path, so readers never see a partial file. It does not fsync: the
// journal and status files describe running processes, which a power loss
// ends too, and what they must survive (an orchestrator or master killed
// mid-step) leaves the page cache intact. An fsync per step would cost a
// millisecond or more each on the upgrade's critical path.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("upgrade: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("upgrade: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("upgrade: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("upgrade: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("upgrade: write %s: %w", path, err)
	}
	return nil
}
