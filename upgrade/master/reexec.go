//go:build linux

package master

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// upgrade starts a new master from the binary on disk (USR2): the pid file
// becomes .oldbin and every listener passes across exec.
func (m *master) upgrade() {
	if !m.upgradeVetted() {
		return
	}
	if err := m.pf.RenameOldbin(); err != nil {
		m.log.Error("USR2 refused: renaming the pid file", "err", err)
		return
	}
	cmd, err := m.newMasterCmd()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		m.log.Error("USR2 failed: starting the new master", "err", err)
		if rerr := m.pf.Restore(); rerr != nil {
			m.log.Error("restoring the pid file", "err", rerr)
		}
		return
	}
	m.child, m.childPID = cmd, cmd.Process.Pid
	m.rolledBack = 0
	m.envFrozen = m.envFile != nil
	m.log.Info("new master started", "new_master", m.childPID, "binary", m.binary, "oldbin", m.pf.Path())
	go func() {
		err := cmd.Wait()
		m.post(func() { m.childExited(cmd, err) })
	}()
}

// upgradeVetted reports whether a USR2 may start a new master now, logging
// why not: a failed upgrade must leave this master as it was, pid file
// included, so what the new master will need is vetted first.
func (m *master) upgradeVetted() bool {
	switch {
	case m.stopping:
		m.log.Warn("USR2 ignored: shutting down")
		return false
	case m.child != nil:
		m.log.Warn("USR2 ignored: an upgrade is pending; the new master runs", "new_master", m.childPID)
		return false
	case m.parent != nil:
		m.log.Warn("USR2 ignored: an upgrade is pending; this is the new master and the old one runs", "old_master", m.parentPID)
		return false
	}
	fi, err := os.Stat(m.binary)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		m.log.Error("USR2 refused: the baton program is missing or not executable", "binary", m.binary, "err", err)
		return false
	}
	cfg, err := loadConfig(m.opts, m.cwd)
	if err != nil {
		m.log.Error("USR2 refused: the configuration is invalid", "err", err)
		return false
	}
	// The new master reads the envfile afresh: vet it as it will.
	if err := validate(cfg, false); err != nil {
		m.log.Error("USR2 refused: the working directory is missing, or the envfile or the worker count is bad", "dir", cfg.dir, "err", err)
		return false
	}
	return true
}

// newMasterCmd is the command that starts the new master: this binary's
// path (a replaced file is used), its arguments, and the listeners at fds
// 3 and up, described with the recorded environment in its own.
func (m *master) newMasterCmd() (*exec.Cmd, error) {
	desc := make([]inherited, len(m.lns))
	files := make([]*os.File, len(m.lns))
	for i, l := range m.lns {
		files[i] = l.file
		desc[i] = inherited{FD: listenFDsStart + i, Spec: l.spec.String(), Owned: l.owned,
			FileDev: l.fileDev, FileIno: l.fileIno, Systemd: l.fromSystemd}
	}
	descJSON, err := json.Marshal(desc)
	if err != nil {
		return nil, err
	}
	recJSON, err := json.Marshal(m.recEnv)
	if err != nil {
		return nil, err
	}
	env := append([]string(nil), m.recEnv...)
	env = setVar(env, EnvMasterEnv, string(recJSON))
	env = setVar(env, EnvInheritFDs, string(descJSON))
	env = setVar(env, EnvMasterParent, procs.Identity{PID: os.Getpid(), Start: m.start}.String())
	env = setVar(env, EnvMasterCwd, m.cwd)
	env = setVar(env, EnvMasterGeneration, strconv.Itoa(m.genNum))
	env = m.watchdogEnv(env)
	return &exec.Cmd{
		Path:       m.binary, // found again by its path: a replaced file is used
		Args:       append([]string{m.binary}, m.args...),
		Env:        env,
		Dir:        "/", // relative paths resolve against EnvMasterCwd
		ExtraFiles: files,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
	}, nil
}

// childExited handles the end of the master started on USR2 while this one
// still runs: it was not committed, so this master takes the pid file (and
// systemd's MAINPID) back, and serves again if it had drained.
func (m *master) childExited(cmd *exec.Cmd, err error) {
	if m.child != cmd {
		return
	}
	pid := m.childPID
	m.syncChildGeneration()
	m.child, m.childPID = nil, 0
	// A killed master leaves its status file; it describes nothing now.
	if err := os.Remove(statusfile.Path(m.cfg.pidfile, pid)); err == nil {
		m.log.Info("removed the status file the new master left", "new_master", pid)
	}
	if m.stopping {
		return
	}
	m.log.Warn("new master exited before it was committed; taking the pid file back", "new_master", pid, "status", exitStatus(err))
	m.rolledBack = pid
	if rerr := m.pf.Restore(); rerr != nil {
		m.log.Error("restoring the pid file from .oldbin failed", "err", rerr)
	} else {
		m.log.Info("pid file restored", "path", m.pf.Path())
	}
	m.sd.notify("MAINPID=" + strconv.Itoa(os.Getpid()))
	if m.current() == nil {
		m.log.Info("no workers after WINCH: starting a generation again")
		m.draining = false
		m.startGeneration()
	}
}

// openParent watches the master that started this one; while it runs an
// upgrade is pending.
func (m *master) openParent(value string) {
	pidStr, startStr, _ := strings.Cut(value, "@")
	pid, err1 := strconv.Atoi(pidStr)
	start, err2 := strconv.ParseUint(startStr, 10, 64)
	if err1 != nil || err2 != nil {
		m.log.Warn("ignoring malformed parent identity", "var", EnvMasterParent, "value", value)
		return
	}
	p, err := procs.OpenIdentity(procs.Identity{PID: pid, Start: start})
	if err != nil {
		m.log.Info("the old master is already gone", "old_master", pid, "err", err)
		return
	}
	m.parent, m.parentPID = p, pid
	go func() {
		if err := p.Wait(m.bg); err != nil {
			m.log.Warn("waiting for the old master", "err", err)
		}
		m.post(func() { m.parentGone(p) })
	}()
}

// parentGone: the old master exited, so this one is committed.
func (m *master) parentGone(p *procs.Process) {
	if m.parent != p {
		return
	}
	m.log.Info("old master exited: upgrade committed", "old_master", m.parentPID)
	m.parent.Close()
	m.parent = nil
	m.unlinkRetired()
	if m.announcedPID {
		// The old master may have taken the main pid back (a HUP) before
		// it was told to quit after all: this master is the one left.
		m.sd.notify("MAINPID=" + strconv.Itoa(os.Getpid()))
	}
}

// syncChildGeneration keeps generation numbers unique across masters: a
// generation this master starts after its child ran is numbered after the
// child's, read from the child's status file.
func (m *master) syncChildGeneration() {
	if m.child == nil {
		return
	}
	st, err := statusfile.Read(statusfile.Path(m.cfg.pidfile, m.childPID))
	if err == nil && st.Generation > m.genNum {
		m.genNum = st.Generation
	}
}
