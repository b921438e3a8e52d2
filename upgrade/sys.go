package upgrade

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// Process is one master or worker, pinned by identity. *procs.Process is
// the real one; tests use fakes.
type Process interface {
	Identity() procs.Identity
	Signal(sig syscall.Signal) error
	Alive() bool
	Wait(ctx context.Context) error
	Close() error
}

var _ Process = (*procs.Process)(nil)

// System is the Machine's window on the processes and files it drives: the
// seam unit tests replace. Every nil field is filled with the real
// implementation by New.
type System struct {
	Info      func(pid int) (procs.Stat, error)
	Children  func(pid int) ([]procs.Stat, error)
	Listeners func(pid int) ([]procs.Listener, error)
	// Open pins a process by identity, failing when it is gone or its pid
	// was reused: a recycled pid is never signalled.
	Open func(id procs.Identity) (Process, error)
	// ReadPid reads a pid file strictly (pidfile.Read).
	ReadPid func(path string) (int, error)
	// RestoreOldbin renames <path>.oldbin back to path (pidfile.RestoreOldbin).
	RestoreOldbin func(path string) error
	// Facts tells what Flavor.DrainIgnored needs.
	Facts func(pid int) MasterFacts
	// ReadStatus reads a baton master's status file.
	ReadStatus func(path string) (statusfile.Master, error)
	// Run runs a preflight command with sh -c, returning its combined output.
	Run func(ctx context.Context, cmd string) ([]byte, error)
	// Watch returns a channel that receives when something in dir changes
	// (inotify), and a stop function; nil channel when not supported.
	Watch func(dir string) (<-chan struct{}, func())
	// Holders lists the processes holding any of the socket inodes.
	Holders func(inodes []uint64) ([]int, error)
	Now     func() time.Time
}

func (s *System) fill() {
	if s.Info == nil {
		s.Info = procs.Info
	}
	if s.Children == nil {
		s.Children = procs.Children
	}
	if s.Listeners == nil {
		s.Listeners = procs.Listeners
	}
	if s.Open == nil {
		s.Open = func(id procs.Identity) (Process, error) {
			p, err := procs.OpenIdentity(id)
			if err != nil {
				return nil, err
			}
			return p, nil
		}
	}
	if s.ReadPid == nil {
		s.ReadPid = pidfile.Read
	}
	if s.RestoreOldbin == nil {
		s.RestoreOldbin = func(path string) error { return pidfile.RestoreOldbin(path, procs.StartTime) }
	}
	if s.Facts == nil {
		s.Facts = readFacts
	}
	if s.ReadStatus == nil {
		s.ReadStatus = statusfile.Read
	}
	if s.Run == nil {
		s.Run = runShell
	}
	if s.Watch == nil {
		s.Watch = watchDir
	}
	if s.Holders == nil {
		s.Holders = socketHolders
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// readFacts reads /proc/PID/stat (session), environ and fd 0.
func readFacts(pid int) MasterFacts {
	f := MasterFacts{PID: pid}
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	if b, err := os.ReadFile(dir + "stat"); err == nil {
		if st, err := procs.ParseStat(b); err == nil {
			f.Session = st.Session
		}
	}
	if b, err := os.ReadFile(dir + "cmdline"); err == nil {
		f.Cmdline = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	if b, err := os.ReadFile(dir + "environ"); err == nil {
		for _, kv := range bytes.Split(b, []byte{0}) {
			if len(kv) > 0 {
				f.Environ = append(f.Environ, string(kv))
			}
		}
		for _, kv := range f.Environ {
			if strings.HasPrefix(kv, "NGINX=") {
				f.Inherited = true
			}
		}
	}
	if t, err := os.Readlink(dir + "fd/0"); err == nil {
		f.StdinTTY = strings.HasPrefix(t, "/dev/pts/") || strings.HasPrefix(t, "/dev/tty")
	}
	return f
}

func runShell(ctx context.Context, cmd string) ([]byte, error) {
	c := execCommand(ctx, cmd)
	out, err := c.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%q: %w", cmd, err)
	}
	return out, nil
}

// socketHolders scans /proc/*/fd for "socket:[INODE]" links.
func socketHolders(inodes []uint64) ([]int, error) {
	want := map[string]bool{}
	for _, ino := range inodes {
		want["socket:["+strconv.FormatUint(ino, 10)+"]"] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("upgrade: scan /proc: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			if t, err := os.Readlink(dir + fd.Name()); err == nil && want[t] {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}
