//go:build linux

package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// master is the state of one running master. Everything but post and the
// channels is owned by the loop goroutine.
type master struct {
	opts    Options // as given, re-merged with the config file on HUP
	cfg     *config
	cwd     string   // the directory the first master started in (by path)
	recEnv  []string // the environment the first master started with
	binary  string   // the program to re-exec on USR2
	args    []string // its arguments after argv[0]
	log     *slog.Logger
	logs    *logs
	sd      systemd
	pf      *pidfile.File
	lns     []*listener
	notify  *notifySocket
	spawner *spawner
	// baseNice is the master's nice value, which ready workers get (nice.go).
	baseNice int

	genNum   int
	gens     []*generation
	workers  map[int]*worker
	want     int
	draining bool // WINCH: no workers until HUP
	stopping bool
	fast     bool

	parent    *procs.Process // the master that started this one, while alive
	parentPID int
	child     *exec.Cmd // the new master started on USR2, while alive
	childPID  int
	reloading bool   // HUP under way: RELOADING=1 sent
	reloads   int    // HUPs handled as a reload (status file)
	reloadErr string // why the last one was refused, "" if accepted
	// rolledBack is the new master a rollback gave up (HUP while it ran,
	// or its exit before the commit), until the next USR2 or HUP: the
	// STATUS= line says so (sdstate.go).
	rolledBack int
	sdLast     string        // the STATUS= line last sent
	watchdog   time.Duration // WatchdogSec=, 0: none (sdstate.go)

	// envFile holds the envfile's values as last read for a worker. Once
	// this master has started a new one (USR2), envFrozen makes the workers
	// it starts get these values instead of a re-read, until a HUP with no
	// new master alive: a rollback (HUP while the new master runs) or the
	// new master dying brings the old generation back as it was, not with
	// the new release's settings that may be what failed. nginx's old
	// master likewise starts its workers again from its old configuration.
	envFile      []string
	envFrozen    bool
	announcedPID bool // MAINPID= sent

	events     chan func()
	done       chan struct{}
	lastStatus statusfile.Master
	statusPath string
	start      uint64

	retired  []*listener         // dropped from the configuration, socket file not yet unlinked
	inherit  string              // EnvInheritFDs as received
	getenv   func(string) string // looks up Options.Env
	bg       context.Context     // ends when the master does
	bgCancel context.CancelFunc
}

// post runs f on the loop goroutine; it is dropped once the loop is over.
func (m *master) post(f func()) {
	select {
	case m.events <- f:
	case <-m.done:
	}
}

// run is Run on Linux.
func run(ctx context.Context, opts Options) error {
	// First: nothing baton inherited may reach a worker (isolate.go).
	if err := cloexecInherited(); err != nil {
		return fmt.Errorf("master: marking inherited descriptors close-on-exec: %w", err)
	}
	m, err := newMaster(opts)
	if err != nil {
		return err
	}
	// Handle the protocol's signals before anything is visible: a signal
	// sent as soon as the pid file appears must not kill this process.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, handledSignals()...)
	defer signal.Stop(sigs)
	defer m.logs.close() // after tearDown: the workers are gone
	if err := m.setUp(); err != nil {
		m.tearDown()
		return err
	}
	m.loop(ctx, sigs)
	m.tearDown()
	return nil
}

// newMaster resolves the options and paths; it binds and starts nothing.
func newMaster(opts Options) (*master, error) {
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	getenv := func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
	cwd := getenv(EnvMasterCwd)
	if cwd == "" {
		var err error
		if cwd, err = os.Getwd(); err != nil { // $PWD when it names ".": keeps symlinks
			return nil, fmt.Errorf("master: working directory: %w", err)
		}
	}
	cfg, err := loadConfig(opts, cwd)
	if err != nil {
		return nil, err
	}
	if err := validate(cfg, false); err != nil {
		return nil, err
	}
	rec, err := masterEnv(env)
	if err != nil {
		return nil, err
	}
	m := &master{
		opts:    opts,
		cfg:     cfg,
		cwd:     cwd,
		recEnv:  rec,
		binary:  opts.Binary,
		args:    opts.Args,
		workers: map[int]*worker{},
		want:    cfg.workers,
		events:  make(chan func(), 64),
		done:    make(chan struct{}),
	}
	m.bg, m.bgCancel = context.WithCancel(context.Background())
	if m.args == nil {
		m.args = os.Args[1:]
	}
	if m.binary == "" {
		m.binary = os.Args[0]
	}
	if m.binary, err = resolveBinary(m.binary, cwd, getenv("PATH")); err != nil {
		return nil, err
	}
	if m.logs, err = openLogs(cfg, opts.Logger == nil); err != nil {
		return nil, err
	}
	m.log = opts.Logger
	if m.log == nil {
		m.log = m.logs.logger(cfg.logFormat)
	}
	m.log = m.log.With("master", os.Getpid())
	if m.logs.copies != nil {
		m.logs.copies.log = m.log
	}
	m.sd = systemd{log: m.log}
	if g, err := strconv.Atoi(getenv(EnvMasterGeneration)); err == nil {
		m.genNum = g
	}
	if p := getenv(EnvMasterParent); p != "" {
		m.openParent(p)
	}
	m.inherit = getenv(EnvInheritFDs)
	m.getenv = getenv
	// The old master that started this one passes its watchdog on, alive
	// or not (watchdogEnv).
	parent, _ := strconv.Atoi(strings.Split(getenv(EnvMasterParent), "@")[0])
	m.watchdog = watchdogPeriod(getenv, os.Getpid(), parent)
	return m, nil
}

// resolveBinary finds the master program by the path it was started with,
// made absolute against cwd, or through PATH; symlinks are kept so that a
// switched release link is followed at the next upgrade.
func resolveBinary(name, cwd, path string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(cwd, name)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: cannot find the baton program %q in PATH", ErrConfig, name)
}

// setUp takes the listeners, the pid file and the notify socket and starts
// the first generation.
func (m *master) setUp() error {
	pid := os.Getpid()
	// The pid file first: a second master fails fast, naming the first,
	// before it binds anything.
	var err error
	m.pf, err = pidfile.Create(m.cfg.pidfile, pid, pidfile.Options{})
	if err != nil {
		return err
	}
	var have []candidate
	if m.inherit != "" {
		have, err = inheritFromParent(m.inherit)
	} else {
		have, err = inheritFromSystemd(pid, m.getenv)
	}
	if err != nil {
		return err
	}
	use, unused, err := reconcile(m.cfg.listens, have, m.cfg.socketMode)
	if err != nil {
		for _, c := range have {
			c.l.file.Close()
		}
		return err
	}
	m.lns = use
	if err := deferAccept(m.lns, m.cfg.deferAccept); err != nil {
		return err
	}
	for _, l := range unused {
		// Not in the configuration any more: close our copy; the previous
		// master still serves on it, so unlink only once it is gone.
		m.log.Info("closing listener removed from the configuration", "addr", l.addr)
		m.retireListener(l)
	}
	for _, l := range m.lns {
		src := "bound"
		if l.fromParent {
			src = "inherited from the previous master"
		} else if l.fromSystemd {
			src = "inherited from systemd"
		}
		m.log.Info("listening", "spec", l.spec.String(), "network", l.network, "addr", l.addr, "inode", l.inode, "source", src)
	}
	m.statusPath = statusfile.Path(m.cfg.pidfile, pid)
	if st, err := procs.Info(pid); err == nil {
		m.start = st.Start
	}
	if m.cfg.ready.notify {
		if m.notify, err = listenNotify(statusfile.NotifyPath(m.cfg.pidfile, pid), pid); err != nil {
			return err
		}
		go m.readNotify(m.notify)
	}
	if err := os.Chdir("/"); err != nil { // never pin a release directory
		return fmt.Errorf("master: chdir /: %w", err)
	}
	if m.baseNice, err = threadNice(); err != nil {
		return fmt.Errorf("master: nice value: %w", err)
	}
	m.spawner = newSpawner()
	m.log.Info("master started", "pid", pid, "pidfile", m.cfg.pidfile, "binary", m.binary,
		"parent", m.parentPID, "workers", m.want, "ready", m.cfg.ready.String())
	m.startGeneration()
	m.syncSystemd(m.writeStatus())
	return nil
}

// readNotify forwards datagrams from workers to the loop.
func (m *master) readNotify(ns *notifySocket) {
	for {
		msg, err := ns.read()
		if err != nil {
			return
		}
		m.post(func() { m.onNotify(msg) })
	}
}

func (m *master) onNotify(msg notifyMsg) {
	w := m.ownerOf(msg.pid)
	if w == nil {
		m.log.Warn("notify message from a process that is no worker; ignored", "pid", msg.pid)
		return
	}
	if msg.fields["READY"] == "1" {
		m.workerReady(w)
	}
}

// loop handles signals and events until the master has stopped.
func (m *master) loop(ctx context.Context, sigs <-chan os.Signal) {
	defer close(m.done)
	ctxDone := ctx.Done()
	tick, stopTick := m.sdTicker()
	defer stopTick()
	for !m.stopping || len(m.workers) > 0 {
		select {
		case s := <-sigs:
			m.onSignal(s.(syscall.Signal))
		case f := <-m.events:
			f()
		case <-tick:
			m.sdTick()
		case <-ctxDone:
			ctxDone = nil
			m.log.Info("context done; stopping gracefully")
			m.stop(false)
		}
		m.syncSystemd(m.writeStatus())
	}
}

// onSignal runs the table's action for sig.
func (m *master) onSignal(sig syscall.Signal) {
	a := signalTable[sig]
	if a == actNone {
		return // logging it could raise it again
	}
	m.log.Info("signal", "signal", sigName(sig), "action", a.String())
	switch a {
	case actUpgrade:
		m.upgrade()
	case actDrain:
		m.drain()
	case actReload:
		m.reload()
	case actGraceful:
		m.stop(false)
	case actFast:
		m.stop(true)
	case actReopen:
		m.reopen()
	case actMore:
		if !m.stopping {
			m.adjustWorkers(+1)
		}
	case actLess:
		if !m.stopping {
			m.adjustWorkers(-1)
		}
	}
}

// drain stops all workers and keeps the listeners (WINCH).
func (m *master) drain() {
	if m.stopping {
		return
	}
	m.draining = true
	for _, g := range m.gens {
		if !g.retiring {
			m.retire(g, m.cfg.stopSignal)
		}
	}
}

// reload re-reads the configuration and starts a fresh generation (HUP);
// the old one stops once the new one is ready.
func (m *master) reload() {
	if m.stopping {
		return
	}
	m.reloads++
	if m.child == nil {
		m.rolledBack = 0
		if m.envFrozen {
			m.envFrozen = false
			m.log.Info("reload: the envfile is read again")
		}
	}
	cfg, err := loadConfig(m.opts, m.cwd)
	if err == nil {
		err = validate(cfg, m.envFrozen)
	}
	if err != nil {
		m.reloadErr = "configuration rejected: " + err.Error()
		m.log.Error("reload: configuration rejected; keeping the current one", "err", err)
		return
	}
	if err := m.applyListeners(cfg); err != nil {
		m.reloadErr = "listeners rejected: " + err.Error()
		m.log.Error("reload: listeners rejected; keeping the current configuration", "err", err)
		return
	}
	if m.notify == nil && cfg.ready.notify {
		ns, err := listenNotify(statusfile.NotifyPath(m.cfg.pidfile, os.Getpid()), os.Getpid())
		if err != nil {
			m.reloadErr = "notify socket: " + err.Error()
			m.log.Error("reload: notify socket", "err", err)
			return
		}
		m.notify = ns
		go m.readNotify(ns)
	}
	m.reloadErr = ""
	m.cfg = cfg
	m.want = cfg.workers
	m.draining = false
	m.syncChildGeneration()
	if !m.reloading {
		m.reloading = true
		m.sd.notify("RELOADING=1")
	}
	m.startGeneration()
}

// applyListeners binds addresses the new configuration adds and closes the
// ones it removes (the old generation keeps its own copies until it stops).
func (m *master) applyListeners(cfg *config) error {
	have := make([]candidate, len(m.lns))
	for i, l := range m.lns {
		have[i] = candidate{l: l, spec: l.spec.String()}
	}
	use, unused, err := reconcile(cfg.listens, have, cfg.socketMode)
	if err != nil {
		return err
	}
	if err := deferAccept(use, cfg.deferAccept); err != nil {
		return err
	}
	for _, l := range unused {
		m.log.Info("closing listener removed from the configuration", "addr", l.addr)
		m.retireListener(l)
	}
	m.lns = use
	return nil
}

// retire closes a listener the configuration dropped. Its socket file is
// unlinked now if no other master serves on it, else when the last one is
// gone (unlinkRetired).
func (m *master) retireListener(l *listener) {
	l.file.Close()
	if l.owned {
		m.retired = append(m.retired, l)
	}
	m.unlinkRetired()
}

// unlinkRetired removes the socket files of retired listeners once no other
// master may serve on them.
func (m *master) unlinkRetired() {
	if m.otherMasterAlive() {
		return
	}
	for _, l := range m.retired {
		if err := l.unlinkIfOwned(); err != nil {
			m.log.Warn("unlinking a retired socket", "addr", l.addr, "err", err)
		}
	}
	m.retired = nil
}

// announceReady tells systemd that the current generation serves.
func (m *master) announceReady() {
	switch {
	case m.child != nil:
		// A generation made ready while a new master runs is a rollback
		// (HUP to the old master): take the main pid back now, before the
		// new master is stopped, so systemd never sees its main process
		// exit with no successor named.
		m.rolledBack = m.childPID
		m.sd.notify("MAINPID=" + strconv.Itoa(os.Getpid()) + "\nREADY=1")
	case !m.announcedPID && m.parentPID != 0:
		m.announcedPID = true
		m.sd.notify("MAINPID=" + strconv.Itoa(os.Getpid()) + "\nREADY=1")
	default:
		m.announcedPID = true
		m.sd.notify("READY=1")
	}
	m.reloading = false
}

// otherMasterAlive reports a previous or next master sharing the listeners.
func (m *master) otherMasterAlive() bool { return m.child != nil || m.parent != nil }

// stop begins a graceful (QUIT) or fast (TERM, INT) shutdown.
func (m *master) stop(fast bool) {
	if m.stopping && (m.fast || !fast) {
		return
	}
	if !m.stopping && !m.otherMasterAlive() {
		// Only the last master speaks for the unit: a STOPPING=1 from an
		// old master that handed over would stop the new one with it.
		m.sd.notify("STOPPING=1")
	}
	m.stopping, m.fast = true, fast
	sig := m.cfg.stopSignal
	if fast {
		sig = sigFastStop
	}
	for _, g := range m.gens {
		g.retiring = true
		for _, s := range g.slots {
			if s.backoff != nil {
				s.backoff.Stop()
				s.backoff = nil
			}
		}
	}
	for _, w := range m.workers {
		m.stopWorker(w, sig)
	}
}

// tearDown releases what setUp took, in reverse.
func (m *master) tearDown() {
	m.bgCancel()
	last := !m.otherMasterAlive()
	if m.notify != nil {
		m.notify.close()
	}
	for _, l := range m.lns {
		if err := l.close(last); err != nil {
			m.log.Warn("closing listener", "addr", l.addr, "err", err)
		}
	}
	m.unlinkRetired()
	if m.spawner != nil {
		m.spawner.close()
	}
	if m.statusPath != "" {
		if err := os.Remove(m.statusPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("removing status file", "err", err)
		}
	}
	if m.pf != nil {
		if err := m.pf.Remove(); err != nil {
			m.log.Warn("removing pid file", "path", m.pf.Path(), "err", err)
		}
		m.pf.Close()
	}
	if m.parent != nil {
		m.parent.Close()
	}
	if m.spawner != nil { // it had started
		m.log.Info("master exited")
	}
}
