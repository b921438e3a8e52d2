//go:build linux

package master

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/procs"
)

// This file keeps workers apart from what the master inherited and from
// each other's lifetimes:
//
//   - Descriptors: whatever baton inherited without close-on-exec (a pipe
//     from a shell, a log file, an fd a service manager leaked) would pass
//     to every worker and every new master. cloexecInherited marks all of
//     them close-on-exec at start; the listeners reach a worker or the new
//     master only through exec.Cmd.ExtraFiles, which dup2(2)s them without
//     the flag, so nothing baton needs is lost.
//   - Process groups: a worker leads a group of its own (Setpgid) and every
//     signal goes to the group, so a server a worker script runs without
//     exec gets the stop signal too, and KILL at the stop timeout.
//   - Reaping: a worker's exit is observed with waitid(WNOWAIT), which
//     leaves it a zombie; the loop reaps it (exec.Cmd.Wait) only once no
//     other member of its group is left. While the zombie exists its pid,
//     which is the group's id, cannot be reused, and every signal is sent
//     from the loop, before that reap: kill(-pgid) never reaches a stranger.

// firstInheritedFD is the lowest descriptor cloexecInherited marks: stdin,
// stdout and stderr stay as they are (workers get stdout and stderr).
const firstInheritedFD = 3

// cloexecInherited marks every descriptor from 3 up close-on-exec
// (close_range(2) with CLOSE_RANGE_CLOEXEC, Linux 5.11; else one fcntl per
// entry of /proc/self/fd). Descriptors baton opened itself already have the
// flag (Go opens everything O_CLOEXEC); the inherited listeners (EnvInheritFDs,
// systemd's LISTEN_FDS) stay open and are handed on by ExtraFiles.
func cloexecInherited() error {
	err := unix.CloseRange(firstInheritedFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil || !(errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)) {
		return err
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= firstInheritedFD {
			unix.CloseOnExec(fd) // the directory's own fd may be gone: EBADF is fine
		}
	}
	return nil
}

// groupRest lists the live members of process group pgid other than its
// leader (pid pgid): the processes a worker left behind.
func groupRest(pgid int) []procs.Identity {
	ids, err := procs.Group(pgid)
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(ids, func(id procs.Identity) bool { return id.PID == pgid })
}

// signalGroup signals w's process group. It is called on the loop only,
// while w is in m.workers, so its leader is not reaped yet and the group's
// id is still its own. A gone group is not an error.
func signalGroup(w *worker, sig syscall.Signal) error {
	err := unix.Kill(-w.pid, sig)
	if err == nil || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return &procs.SignalError{PID: -w.pid, Signal: sig, Err: err}
}

// leaderExited handles the exit of a worker process, still unreaped: once
// nothing else of its group is left it is reaped and its slot told
// (workerExited); until then what is left gets the stop signal (if the
// worker was not stopping already), KILL at the stop timeout, and is waited
// for.
func (m *master) leaderExited(w *worker) {
	if !w.leaderGone {
		w.leaderGone, w.exitedAs = true, w.state
	}
	if rest := groupRest(w.pid); len(rest) > 0 {
		if w.state != stStopping {
			m.log.Warn("worker exited, leaving processes in its group; stopping them",
				"generation", w.slot.gen.num, "worker", w.slot.index, "pid", w.pid, "left", len(rest))
			m.stopWorker(w, m.cfg.stopSignal)
		}
		go func() {
			procs.WaitGone(m.bg, rest)
			m.post(func() { m.leaderExited(w) })
		}()
		return
	}
	m.workerExited(w, w.cmd.Wait())
}
