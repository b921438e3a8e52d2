package upgrade

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// reuseSlack is how much later than its pid file a process may have started
// before the pid counts as reused: start times are accurate to a clock tick
// and mtimes to the file system's granularity.
const reuseSlack = time.Second

// readPid reads one pid file without following a symlink.
func (m *Machine) readPid(path string) (PidObs, time.Time) {
	p := PidObs{Path: path}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, time.Time{}
	}
	p.Exists = true
	if err != nil {
		p.Err = err.Error()
		return p, time.Time{}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		p.Err = "is a symlink; refusing to follow it"
		return p, time.Time{}
	}
	if !fi.Mode().IsRegular() {
		p.Err = "is not a regular file"
		return p, time.Time{}
	}
	pid, err := m.sys.ReadPid(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			p.Exists = false
			return p, time.Time{}
		}
		p.Err = err.Error()
		return p, time.Time{}
	}
	if pid <= 1 {
		p.Err = fmt.Sprintf("pid %d is not a master", pid)
		return p, time.Time{}
	}
	p.PID = pid
	return p, fi.ModTime()
}

// observe reads both pid files and inspects the masters they name.
func (m *Machine) observe() Observation {
	defer m.span("observe")()
	fl := m.flavor
	o := Observation{AsideHoldsNew: fl.AsideHoldsNew, DrainFloor: fl.DrainFloor, Journal: m.j.Summary()}
	var mt, at time.Time
	o.Main, mt = m.readPid(m.opts.Pidfile)
	o.Aside, at = m.readPid(fl.AsidePath(m.opts.Pidfile))
	masters := []int{o.Main.PID, o.Aside.PID}
	m.inspect(&o.Main, mt, masters)
	m.inspect(&o.Aside, at, masters)
	old := o.Aside
	if fl.AsideHoldsNew {
		old = o.Main
	}
	if old.Master != nil {
		o.DrainFloor = fl.Floor(m.sys.Facts(old.PID))
	}
	o.Child = m.pendingChild(o, masters)
	if m.j != nil && m.j.Old.PID > 0 && o.Main.PID != m.j.Old.PID && o.Aside.PID != m.j.Old.PID {
		o.OldRuns = m.runs(m.j.Old)
	}
	o.At = m.sys.Now()
	return o
}

// pendingChild inspects the new master a live master of o has started and
// no pid file names yet: the journal's new master if it is one of them,
// else the first.
func (m *Machine) pendingChild(o Observation, masters []int) *MasterObs {
	for _, p := range []PidObs{o.Main, o.Aside} {
		if p.Master == nil || len(p.Master.ChildMasters) == 0 {
			continue
		}
		kids := p.Master.ChildMasters
		pid := kids[0]
		if m.j != nil && slices.Contains(kids, m.j.New.PID) {
			pid = m.j.New.PID
		}
		st, err := m.sys.Info(pid)
		if err != nil || st.Zombie() || st.PPID != p.Master.ID.PID {
			continue
		}
		return m.master(st, append(masters, p.Master.ID.PID))
	}
	return nil
}

// inspect fills p.Master when p.PID is a live master of the flavor, and
// p.Err when the pid runs something else: a recycled pid is never a master.
func (m *Machine) inspect(p *PidObs, written time.Time, masters []int) {
	if p.PID <= 0 || p.Err != "" {
		return
	}
	st, err := m.sys.Info(p.PID)
	if err != nil {
		if !errors.Is(err, procs.ErrGone) && !errors.Is(err, fs.ErrNotExist) {
			p.Err = err.Error()
		}
		return
	}
	if st.Zombie() {
		return
	}
	// The journal's identities (pid and start ticks since boot) are
	// exact: a pid it pins is its master or a reused pid, and the wall
	// clock has no say. Only a pid it does not pin is judged by the pid
	// file's time, which a step of the wall clock (NTP, a VM resumed)
	// between the write and now shifts against the start time.
	pinned := false
	if m.j != nil {
		for _, id := range []procs.Identity{m.j.Old, m.j.New} {
			if id.PID != st.PID {
				continue
			}
			if id.Start != st.Start {
				p.Err = fmt.Sprintf("pid %d was reused: the journal's master %s is gone", p.PID, id)
				return
			}
			pinned = true
		}
	}
	if !pinned && !written.IsZero() && !st.StartTime.IsZero() && st.StartTime.After(written.Add(reuseSlack)) {
		p.Err = fmt.Sprintf("pid %d started at %s, after the file was written: the pid was reused", p.PID, st.StartTime.Format(time.RFC3339))
		return
	}
	if !m.flavor.Match(st.Cmdline) {
		p.Err = fmt.Sprintf("pid %d runs %q, not a %s master", p.PID, strings.Join(st.Cmdline, " "), m.flavor.Name)
		return
	}
	p.Master = m.master(st, masters)
}

// master builds the observation of one live master.
func (m *Machine) master(st procs.Stat, masters []int) *MasterObs {
	mo := &MasterObs{
		ID:         st.Identity(),
		PPID:       st.PPID,
		UID:        st.UID,
		Flavor:     m.flavor.Name,
		Binary:     st.Exe,
		BinaryGone: st.ExeDeleted,
		Dir:        st.Cwd,
		Cmdline:    st.Cmdline,
		Workers:    []int{},
	}
	if ls, err := m.listeners(st.PID); err == nil {
		mo.Listeners = ls
	}
	kids, _ := m.sys.Children(st.PID)
	for _, k := range kids {
		if k.Zombie() {
			continue
		}
		switch {
		case k.Forked():
			// Forked and not exec'd: a worker, or a child in the moment
			// before its exec, which still shows this master's title (a
			// baton worker before its trampoline runs, a gunicorn worker
			// before it retitles itself). A new master always execs.
			mo.addWorker(k)
		case slices.Contains(masters, k.PID) || k.Role() == procs.RoleMaster || k.Role() == procs.RoleUnknown && (m.childIsMaster(k) || m.execedChild(k, mo.Listeners)):
			mo.ChildMasters = append(mo.ChildMasters, k.PID)
		default:
			mo.addWorker(k)
		}
	}
	if m.flavor.StatusFile {
		if s, err := m.sys.ReadStatus(statusfile.Path(m.opts.Pidfile, st.PID)); err == nil {
			mo.Status = &s
		}
	}
	return mo
}

// addWorker adds k to the master's workers.
func (mo *MasterObs) addWorker(k procs.Stat) {
	mo.Workers = append(mo.Workers, k.PID)
	mo.WorkerIDs = append(mo.WorkerIDs, k.Identity())
}

// childIsMaster tells a new master from a worker whose title says neither.
func (m *Machine) childIsMaster(k procs.Stat) bool {
	if !m.flavor.Match(k.Cmdline) {
		return false
	}
	if m.flavor.MasterEnv == "" {
		return true
	}
	for _, kv := range m.sys.Facts(k.PID).Environ {
		// The variable names the parent: the new master's own workers inherit
		// it but are children of the new master, not of the one it names.
		if kv == m.flavor.MasterEnv+"="+strconv.Itoa(k.PPID) {
			return true
		}
	}
	return false
}

// execedChild tells, for a flavor whose workers are all titled
// (Flavor.TitledWorkers), what Upgrade exec'd from a child that is no
// worker: an untitled child holding one of the master's listeners ls. An
// empty command line says nothing: a process in the middle of execve(2)
// (a worker the master just started, say) reads empty for a moment.
func (m *Machine) execedChild(k procs.Stat, ls []procs.Listener) bool {
	if !m.flavor.TitledWorkers || len(ls) == 0 || len(k.Cmdline) == 0 {
		return false
	}
	if m.flavor.WorkerEnv != "" {
		for _, kv := range m.sys.Facts(k.PID).Environ {
			if strings.HasPrefix(kv, m.flavor.WorkerEnv+"=") {
				return false
			}
		}
	}
	held, err := m.listeners(k.PID)
	if err != nil {
		return false
	}
	have := inodes(ls)
	for _, l := range held {
		if _, ok := slices.BinarySearch(have, l.Inode); ok {
			return true
		}
	}
	return false
}

// listeners returns the listening sockets pid holds. While Start has the
// old master's listeners pinned (m.known), it reads only pid's descriptors
// and returns the known listeners among them: every use of listeners
// during its waits compares inodes with the old master's (does the new
// master hold them all, does a child hold one), and the network tables,
// which grow with the host's sockets, need not be read at every look.
func (m *Machine) listeners(pid int) ([]procs.Listener, error) {
	if len(m.known) == 0 {
		return m.sys.Listeners(pid)
	}
	socks, err := m.sys.Sockets(pid)
	if err != nil {
		return nil, err
	}
	var out []procs.Listener
	for _, s := range socks {
		if l, ok := m.known[s.Inode]; ok {
			l.FD = s.FD
			out = append(out, l)
		}
	}
	return out, nil
}

// pinListeners pins ls as the known listeners (nil: none, every look reads
// the network tables again).
func (m *Machine) pinListeners(ls []procs.Listener) {
	m.known = nil
	if len(ls) == 0 {
		return
	}
	m.known = make(map[uint64]procs.Listener, len(ls))
	for _, l := range ls {
		m.known[l.Inode] = l
	}
}

// workerIDs pins the identities of a master's workers.
func (m *Machine) workerIDs(pids []int) []procs.Identity {
	var ids []procs.Identity
	for _, pid := range pids {
		if st, err := m.sys.Info(pid); err == nil && !st.Zombie() {
			ids = append(ids, st.Identity())
		}
	}
	return ids
}

// inodes is the set of listening socket inodes of a master.
func inodes(ls []procs.Listener) []uint64 {
	var out []uint64
	for _, l := range ls {
		out = append(out, l.Inode)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// missingListeners lists the old master's listeners the new one lacks.
func missingListeners(old, nu []procs.Listener) []procs.Listener {
	have := inodes(nu)
	var miss []procs.Listener
	for _, l := range old {
		if _, ok := slices.BinarySearch(have, l.Inode); !ok {
			miss = append(miss, l)
		}
	}
	return miss
}

// detect chooses the flavor: the option, then the journal, then the command
// line of whichever master a pid file names.
func (m *Machine) detect() error {
	name := m.opts.Flavor
	if (name == "" || name == "auto") && m.j != nil && m.j.Flavor != "" {
		name = m.j.Flavor
	}
	if name != "" && name != "auto" {
		f, err := LookupFlavor(name)
		if err != nil {
			return err
		}
		m.flavor = f
		return nil
	}
	paths := []string{m.opts.Pidfile}
	for _, f := range Flavors {
		if !slices.Contains(paths, f.AsidePath(m.opts.Pidfile)) {
			paths = append(paths, f.AsidePath(m.opts.Pidfile))
		}
	}
	var why []string
	for _, path := range paths {
		p, _ := m.readPid(path)
		switch {
		case !p.Exists:
			if path == m.opts.Pidfile {
				why = append(why, path+": missing")
			}
			continue
		case p.Err != "":
			why = append(why, path+": "+p.Err)
			continue
		}
		st, err := m.sys.Info(p.PID)
		if err != nil || st.Zombie() {
			why = append(why, fmt.Sprintf("%s: pid %d is not running", path, p.PID))
			continue
		}
		f, ok := Detect(st.Cmdline)
		if !ok {
			why = append(why, fmt.Sprintf("%s: pid %d runs %q, which is no known master (%s); --flavor names one", path, p.PID, strings.Join(st.Cmdline, " "), strings.Join(FlavorNames(), ", ")))
			continue
		}
		m.flavor = f
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotRunning, strings.Join(why, "; "))
}
