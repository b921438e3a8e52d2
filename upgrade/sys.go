package upgrade

import (
	"context"
	"fmt"
	"slices"
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
	// Sockets lists the socket descriptors of pid (procs.Sockets): enough
	// to tell which known listeners it holds. Nil: procs.Sockets, or, when
	// Listeners is set, the sockets of Listeners' answer (a fake world's
	// listeners are all its sockets).
	Sockets func(pid int) ([]procs.Socket, error)
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
	// Run runs a preflight command with sh -c in a process group of its
	// own and a scrubbed environment (runCommand), returning its combined
	// output; when ctx is done the whole group is stopped.
	Run func(ctx context.Context, cmd string) ([]byte, error)
	// Watch returns a channel that receives when something in dir changes
	// (inotify), and a stop function; nil channel when not supported.
	Watch func(dir string) (<-chan struct{}, func())
	// WatchProcs returns a channel that receives when one of roots, or a
	// process they start, forks, execs or exits (procs.WatchTree), and a
	// stop function; nil channel when not supported.
	WatchProcs func(roots []int) (<-chan struct{}, func())
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
	switch {
	case s.Sockets != nil:
	case s.Listeners != nil:
		s.Sockets = socketsOf(s.Listeners)
	default:
		s.Sockets = procs.Sockets
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
		s.ReadStatus = readStatus
	}
	if s.Run == nil {
		s.Run = runShell
	}
	if s.Watch == nil {
		s.Watch = watchDir
	}
	if s.WatchProcs == nil {
		s.WatchProcs = watchProcs
	}
	if s.Holders == nil {
		s.Holders = socketHolders
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// readFacts reads what the flavors' drain checks need about pid, all of one
// process: once procs.Info has pinned its identity, a pid reused meanwhile
// leaves the rest unset rather than describing another process. What cannot
// be read is left unset.
func readFacts(pid int) MasterFacts {
	f := MasterFacts{PID: pid}
	st, err := procs.Info(pid)
	if err != nil {
		return f
	}
	f.Session, f.Cmdline = st.Session, st.Cmdline
	if env, err := procs.Environ(st.Identity()); err == nil {
		f.Environ = env
		f.Inherited = slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "NGINX=") })
	}
	if t, err := procs.FDTarget(st.Identity(), 0); err == nil {
		f.StdinTTY = strings.HasPrefix(t, "/dev/pts/") || strings.HasPrefix(t, "/dev/tty")
	}
	return f
}

// runShell runs a preflight command (runCommand) and names it in its error.
func runShell(ctx context.Context, cmd string) ([]byte, error) {
	out, err := runCommand(ctx, cmd, CommandGrace)
	if err != nil {
		return out, fmt.Errorf("%q: %w", cmd, err)
	}
	return out, nil
}

// socketsOf derives Sockets from a Listeners.
func socketsOf(listeners func(int) ([]procs.Listener, error)) func(int) ([]procs.Socket, error) {
	return func(pid int) ([]procs.Socket, error) {
		ls, err := listeners(pid)
		if err != nil {
			return nil, err
		}
		out := make([]procs.Socket, len(ls))
		for i, l := range ls {
			out[i] = procs.Socket{FD: l.FD, Inode: l.Inode}
		}
		return out, nil
	}
}

// watchProcs follows a process tree through procs.WatchTree; a nil channel
// where the kernel's process events are not available to baton.
func watchProcs(roots []int) (<-chan struct{}, func()) {
	ch, stop, err := procs.WatchTree(roots)
	if err != nil {
		return nil, func() {}
	}
	return ch, stop
}

// socketHolders lists the pids of the processes holding any of the sockets.
func socketHolders(inodes []uint64) ([]int, error) {
	ids, err := procs.SocketHolders(inodes)
	if err != nil {
		return nil, err
	}
	pids := make([]int, len(ids))
	for i, id := range ids {
		pids[i] = id.PID
	}
	return pids, nil
}

// readStatus reads a baton master's status file as the journal is read:
// it says when the new master is ready, so nothing another user could
// have planted is believed.
func readStatus(path string) (statusfile.Master, error) {
	data, _, err := pidfile.Options{}.ReadState(path, pidfile.MaxStateSize)
	if err != nil {
		return statusfile.Master{}, err
	}
	return statusfile.Decode(path, data)
}
