//go:build linux

package master

import (
	"fmt"
	"os"
	"sync"
)

// reopen reopens the log file and passes the signal to the workers (USR1).
func (m *master) reopen() {
	if m.logw != nil {
		if err := m.logw.reopen(); err != nil {
			m.log.Error("reopening log file", "err", err)
		} else {
			m.log.Info("log file reopened", "path", m.cfg.logFile)
		}
	}
	for _, w := range m.workers {
		if err := signalGroup(w, sigReopen); err != nil {
			m.log.Warn("signal worker", "pid", w.pid, "err", err)
		}
	}
}

// reopener is an io.Writer on a file that can be reopened (logrotate).
type reopener struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openReopener(path string) (*reopener, error) {
	r := &reopener{path: path}
	if err := r.reopen(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *reopener) reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("master: log file: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopener) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

func (r *reopener) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.f.Close()
}
