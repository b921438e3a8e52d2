//go:build linux

package master

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/procs"
)

// workerState is where one worker process is in its life.
type workerState uint8

const (
	stStarting workerState = iota // started, not ready yet
	stReady                       // sent READY=1, or alive for the delay
	stStopping                    // sent the stop signal, waiting for exit
)

func (s workerState) String() string {
	switch s {
	case stStarting:
		return "starting"
	case stReady:
		return "ready"
	case stStopping:
		return "stopping"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// stateBackoff is the status of a slot waiting to start its worker again.
const stateBackoff = "backoff"

// generation is one set of workers started together (at start, on HUP).
type generation struct {
	num      int
	slots    []*slot
	wasReady bool // every worker was ready at once: it has been announced
	retiring bool // its workers are being stopped; it will not respawn
}

// slot is one worker position (BATON_WORKER) of a generation, which keeps a
// worker running through restarts.
type slot struct {
	index    int
	gen      *generation
	w        *worker     // the live worker, nil while backing off or stopped
	restarts int         // workers started after the first
	fails    int         // consecutive workers that exited before ready
	backoff  *time.Timer // pending restart
	removed  bool        // TTOU took it away
}

// worker is one worker process.
type worker struct {
	slot     *slot
	pid      int
	cmd      *exec.Cmd
	state    workerState
	started  time.Time
	nice     int           // the nice value it started at (nice.go)
	timers   []*time.Timer // readiness delay, kill escalation
	stopSent syscall.Signal
	// leaderGone: the worker process exited (unreaped, see isolate.go) in
	// state exitedAs; its group may still have members.
	leaderGone bool
	exitedAs   workerState
}

func (w *worker) stopTimers() {
	for _, t := range w.timers {
		t.Stop()
	}
	w.timers = nil
}

// spawner starts every worker from one goroutine locked to an OS thread that
// lives as long as the master: Pdeathsig fires when the *thread* that forked
// the child exits (prctl(2) PR_SET_PDEATHSIG; golang/go#27505), so a worker
// forked from an ordinary goroutine's thread can be killed when the Go
// runtime retires that thread, long before the master dies.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	nice int // the worker's nice value, inherited from the spawner thread
	done chan spawnResult
}

type spawnResult struct {
	err     error // the worker did not start
	niceErr error // it started, but not at the nice value asked for
}

// neverUnlockThread names why the spawner goroutine keeps its thread locked
// until the master is done: unlocking would let the runtime reuse or retire
// the forking thread and fire the workers' Pdeathsig. (A locked thread also
// never clones the runtime's other threads, so its nice value, see nice.go,
// stays its own.)
type neverUnlockThread struct{}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		var _ neverUnlockThread // the thread exits with the goroutine, after the workers
		cur, curErr := threadNice()
		close(started)
		for r := range s.reqs {
			var res spawnResult
			if curErr != nil || r.nice != cur {
				if res.niceErr = setThreadNice(r.nice); res.niceErr == nil {
					cur, curErr = r.nice, nil
				}
			}
			res.err = r.cmd.Start()
			r.done <- res
		}
	}()
	<-started
	return s
}

// start starts cmd on the spawner thread at nice value nice.
func (s *spawner) start(cmd *exec.Cmd, nice int) spawnResult {
	done := make(chan spawnResult, 1)
	s.reqs <- spawnReq{cmd: cmd, nice: nice, done: done}
	return <-done
}

// close ends the spawner; call it only when no worker is left.
func (s *spawner) close() { close(s.reqs) }

// trampoline runs the worker command with LISTEN_PID set to its own pid:
// the shell's $$ is the pid that exec keeps, which the master cannot know
// before fork. sd_listen_fds(3) and go-systemd's activation ignore sockets
// whose LISTEN_PID is not their own.
const trampoline = `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`

// shell runs the trampoline.
const shell = "/bin/sh"

// workerEnv builds a worker's environment (see the policy in env.go),
// reading the envfile anew unless this master is frozen as the old one of an
// upgrade (master.envFrozen).
func (m *master) workerEnv(s *slot) ([]string, error) {
	env := workerBaseEnv(m.recEnv, m.cfg.envDrop)
	if m.cfg.envFile != "" {
		extra := m.envFile
		if !m.envFrozen {
			var err error
			if extra, err = readEnvFile(m.cfg.envFile); err != nil {
				return nil, err
			}
			m.envFile = append([]string{}, extra...) // non-nil: read, maybe empty
		}
		for _, kv := range extra {
			k, v, _ := strings.Cut(kv, "=")
			env = setVar(env, k, v)
		}
	}
	names := make([]string, len(m.lns))
	ports := make([]string, len(m.lns))
	for i, l := range m.lns {
		names[i] = l.fdName()
		ports[i] = l.starterAddr() + "=" + strconv.Itoa(listenFDsStart+i)
	}
	env = setVar(env, EnvListenFDs, strconv.Itoa(len(m.lns)))
	env = setVar(env, EnvListenFDNames, strings.Join(names, ":"))
	env = setVar(env, EnvServerStarter, strings.Join(ports, ";"))
	env = setVar(env, EnvGeneration, strconv.Itoa(s.gen.num))
	env = setVar(env, EnvWorker, strconv.Itoa(s.index))
	if m.notify != nil {
		env = setVar(env, EnvNotifySocket, m.notify.path)
	}
	return env, nil
}

// spawn starts the worker of slot s, or schedules a retry.
func (m *master) spawn(s *slot) {
	env, err := m.workerEnv(s)
	var cmd *exec.Cmd
	var stdout, stderr *os.File
	var nice int
	started := func(bool) {}
	if err == nil {
		stdout, stderr, started, err = m.logs.workerStdio()
	}
	if err == nil {
		files := make([]*os.File, len(m.lns))
		for i, l := range m.lns {
			files[i] = l.file
		}
		cmd = &exec.Cmd{
			Path:       shell,
			Args:       append([]string{"sh", "-c", trampoline}, m.cfg.command...),
			Env:        env,
			Dir:        m.cfg.dir, // by the path as given: chdir(2) resolves a symlink now
			ExtraFiles: files,
			Stdout:     stdout,
			Stderr:     stderr,
			SysProcAttr: &syscall.SysProcAttr{
				// A master killed outright (SIGKILL, the OOM killer) stops
				// its workers as a stop would, not with SIGKILL: a worker
				// finishes the requests it holds (an old worker still
				// draining when its master was killed mid-upgrade lost
				// them), and stops accepting; the new generation, or
				// systemd's restart, serves on.
				Pdeathsig:  m.cfg.stopSignal,
				Credential: m.cfg.cred,
				Setpgid:    true, // a group of its own, signalled as one (isolate.go)
			},
		}
		nice = bootNiceOf(m.baseNice, m.cfg.bootNice)
		res := m.spawner.start(cmd, nice)
		if err = res.err; err == nil && res.niceErr != nil {
			m.log.Warn("worker starts at the spawner's nice value", "nice", nice, "err", res.niceErr)
		}
		started(err == nil)
	}
	if err != nil {
		m.log.Error("worker failed to start", "generation", s.gen.num, "worker", s.index, "err", err)
		s.fails++
		m.scheduleRestart(s)
		return
	}
	w := &worker{slot: s, pid: cmd.Process.Pid, cmd: cmd, state: stStarting, started: time.Now(), nice: nice}
	s.w = w
	m.workers[w.pid] = w
	m.log.Info("worker started", "generation", s.gen.num, "worker", s.index, "pid", w.pid, "dir", m.cfg.dir)
	go func() {
		if err := procs.WaitExited(w.pid); err != nil {
			m.log.Error("waiting for worker", "pid", w.pid, "err", err)
		}
		m.post(func() { m.leaderExited(w) })
	}()
	if !m.cfg.ready.notify {
		w.timers = append(w.timers, time.AfterFunc(m.cfg.ready.delay, func() {
			m.post(func() { m.workerReady(w) })
		}))
	}
}

// scheduleRestart starts slot s again after its backoff.
func (m *master) scheduleRestart(s *slot) {
	if s.removed || s.gen.retiring || m.stopping {
		return
	}
	d := backoff(s.fails, m.cfg.backoffMin, m.cfg.backoffMax)
	if s.fails >= m.cfg.crashLoop {
		m.log.Error("worker is crash-looping", "generation", s.gen.num, "worker", s.index,
			"consecutive_failures", s.fails, "retry_in", d)
	}
	s.backoff = time.AfterFunc(d, func() {
		m.post(func() {
			s.backoff = nil
			if s.removed || s.gen.retiring || m.stopping || s.w != nil {
				return
			}
			s.restarts++
			m.spawn(s)
		})
	})
}

// backoff is the delay before restarting a worker after fails consecutive
// failures: lo, doubling from the second failure, at most hi.
func backoff(fails int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < fails && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// workerReady marks w ready (READY=1 or its delay passed).
func (m *master) workerReady(w *worker) {
	if m.workers[w.pid] != w || w.state != stStarting {
		return
	}
	w.state = stReady
	w.slot.fails = 0
	if w.nice != m.baseNice {
		if err := renice(w.pid, m.baseNice); err != nil {
			m.log.Warn("worker keeps its boot nice value", "pid", w.pid, "nice", m.baseNice, "err", err)
		}
	}
	m.log.Info("worker ready", "generation", w.slot.gen.num, "worker", w.slot.index, "pid", w.pid)
	m.checkReady()
}

// workerExited handles the end of a worker, reaped with its whole group.
func (m *master) workerExited(w *worker, err error) {
	delete(m.workers, w.pid)
	w.stopTimers()
	s := w.slot
	if s.w == w {
		s.w = nil
	}
	state := w.exitedAs // the state it died in, not the stop of what it left
	expected := state == stStopping || s.removed || s.gen.retiring || m.stopping
	if expected {
		m.log.Info("worker stopped", "generation", s.gen.num, "worker", s.index, "pid", w.pid, "status", exitStatus(err))
		m.pruneGenerations()
		return
	}
	if state == stReady {
		s.fails = 0
	} else {
		s.fails++
	}
	m.log.Warn("worker exited; restarting", "generation", s.gen.num, "worker", s.index, "pid", w.pid,
		"status", exitStatus(err), "was", state, "consecutive_failures", s.fails)
	m.scheduleRestart(s)
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// stopWorker sends sig and escalates to KILL after the stop timeout. A
// second call with another signal sends it too (a fast stop overtaking a
// graceful one), without resetting the escalation.
func (m *master) stopWorker(w *worker, sig syscall.Signal) {
	if w.state == stStopping && w.stopSent == sig {
		return
	}
	first := w.state != stStopping
	w.state = stStopping
	w.stopSent = sig
	if err := signalGroup(w, sig); err != nil {
		m.log.Warn("signal worker", "pid", w.pid, "signal", sigName(sig), "err", err)
	}
	if first {
		w.timers = append(w.timers, time.AfterFunc(m.cfg.stopTimeout, func() {
			m.post(func() {
				if m.workers[w.pid] != w {
					return
				}
				m.log.Warn("worker did not stop in time; killing", "pid", w.pid, "stop_timeout", m.cfg.stopTimeout)
				if err := signalGroup(w, sigKill); err != nil {
					m.log.Warn("kill worker", "pid", w.pid, "err", err)
				}
			})
		}))
	}
}

// current is the generation new workers belong to, nil after WINCH.
func (m *master) current() *generation {
	if n := len(m.gens); n > 0 && !m.gens[n-1].retiring {
		return m.gens[n-1]
	}
	return nil
}

// startGeneration starts a fresh generation of m.want workers.
func (m *master) startGeneration() {
	m.genNum++
	g := &generation{num: m.genNum}
	for i := range m.want {
		g.slots = append(g.slots, &slot{index: i, gen: g})
	}
	m.gens = append(m.gens, g)
	m.log.Info("starting generation", "generation", g.num, "workers", m.want)
	for _, s := range g.slots {
		m.spawn(s)
	}
}

// retire stops every worker of g with sig and cancels its restarts.
func (m *master) retire(g *generation, sig syscall.Signal) {
	g.retiring = true
	for _, s := range g.slots {
		if s.backoff != nil {
			s.backoff.Stop()
			s.backoff = nil
		}
		if s.w != nil {
			m.stopWorker(s.w, sig)
		}
	}
	m.pruneGenerations()
}

// pruneGenerations forgets retired generations without live workers.
func (m *master) pruneGenerations() {
	keep := m.gens[:0]
	for _, g := range m.gens {
		live := false
		for _, s := range g.slots {
			live = live || s.w != nil
		}
		if live || !g.retiring {
			keep = append(keep, g)
		}
	}
	m.gens = keep
}

// checkReady announces the current generation once all its workers are
// ready, and retires the generations before it.
func (m *master) checkReady() {
	g := m.current()
	if g == nil || g.wasReady || !m.generationReady(g) {
		return
	}
	g.wasReady = true
	m.log.Info("generation ready", "generation", g.num)
	for _, old := range m.gens {
		if old != g && !old.retiring {
			m.log.Info("stopping previous generation", "generation", old.num)
			m.retire(old, m.cfg.stopSignal)
		}
	}
	m.announceReady()
}

// generationReady reports whether every worker of g is ready.
func (m *master) generationReady(g *generation) bool {
	n := 0
	for _, s := range g.slots {
		if s.removed {
			continue
		}
		if s.w == nil || s.w.state != stReady {
			return false
		}
		n++
	}
	return n > 0
}

// adjustWorkers adds (+1) or removes (-1) one worker of the current generation.
func (m *master) adjustWorkers(delta int) {
	if delta < 0 && m.want <= 1 {
		m.log.Info("keeping the last worker", "workers", m.want)
		return
	}
	if delta > 0 && m.want >= MaxWorkers {
		m.log.Warn("TTIN ignored: at the worker cap", "workers", m.want, "max", MaxWorkers)
		return
	}
	m.want += delta
	m.log.Info("worker count changed", "workers", m.want)
	g := m.current()
	if g == nil {
		return
	}
	if delta > 0 {
		s := &slot{index: len(g.slots), gen: g}
		g.slots = append(g.slots, s)
		m.spawn(s)
		return
	}
	for i := len(g.slots) - 1; i >= 0; i-- {
		s := g.slots[i]
		if s.removed {
			continue
		}
		s.removed = true
		if s.backoff != nil {
			s.backoff.Stop()
			s.backoff = nil
		}
		if s.w != nil {
			m.stopWorker(s.w, m.cfg.stopSignal)
		}
		g.slots = g.slots[:i] // a stopping worker still knows its slot
		break
	}
	m.checkReady()
}

// ownerOf finds the worker that pid is, or descends from (a worker that
// forks its own processes may send READY=1 from a child).
func (m *master) ownerOf(pid int) *worker {
	for range 8 {
		if w, ok := m.workers[pid]; ok {
			return w
		}
		st, err := procs.Info(pid)
		if err != nil || st.PPID <= 1 || st.PPID == os.Getpid() {
			return nil
		}
		pid = st.PPID
	}
	return nil
}

func (w *worker) String() string {
	return fmt.Sprintf("worker %d (generation %d, pid %d)", w.slot.index, w.slot.gen.num, w.pid)
}
