package upgrade

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// Observation is everything Classify looks at: what the pid files say, who
// runs, and what the journal recorded. Observe fills it from the system;
// tests build it by hand.
type Observation struct {
	// AsideHoldsNew and DrainFloor come from the flavor (see Flavor).
	AsideHoldsNew bool
	DrainFloor    int
	Main          PidObs // <pidfile>
	Aside         PidObs // <pidfile>.oldbin, or <pidfile>.2 for gunicorn
	// Child is the new master seen as a child of the old one before any
	// pid file names it (the journal's new master when it is one of them),
	// nil when there is none.
	Child *MasterObs
	// OldRuns: the journal's old master still runs though no pid file
	// names it (it removed its pid file on its way out).
	OldRuns bool
	// Journal is the last journal record, nil when there is none.
	Journal *JournalSummary
	// At is when the observation was made; with Journal.Updated it tells
	// how long ago the journal recorded its last step.
	At time.Time
}

// JournalSummary is the part of the journal Classify needs.
type JournalSummary struct {
	State State
	Old   procs.Identity
	New   procs.Identity
	// Updated is when the last step was recorded.
	Updated time.Time
}

// UpgradePending is how long after the journal recorded the upgrade signal
// a new master that has not appeared yet still counts as on its way: the
// signal may be pending in the old master (nginx blocks it outside
// sigsuspend; unicorn and gunicorn queue it for their main loop) or the
// master is between renaming its pid file and fork(2). Past it, an old
// master serving alone is rolled back: the new one came and went.
const UpgradePending = 5 * time.Second

// PidObs is one pid file and the master it names.
type PidObs struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	// Err says why the content is unusable ("" when fine or missing).
	Err string `json:"error,omitempty"`
	PID int    `json:"pid,omitempty"`
	// Master is the live process PID names, nil when none runs.
	Master *MasterObs `json:"master,omitempty"`
}

// MasterObs is what is observed about one live master.
type MasterObs struct {
	ID         procs.Identity `json:"identity"`
	PPID       int            `json:"ppid"`
	UID        int            `json:"uid"`
	Flavor     string         `json:"flavor,omitempty"`
	Binary     string         `json:"binary"`
	BinaryGone bool           `json:"binary_replaced,omitempty"`
	Dir        string         `json:"dir"`
	Cmdline    []string       `json:"cmdline"`
	Workers    []int          `json:"workers"`
	// WorkerIDs are the identities of Workers, in the same order, as the
	// look read them: what pins them needs no second read.
	WorkerIDs    []procs.Identity `json:"-"`
	ChildMasters []int            `json:"child_masters"`
	Listeners    []procs.Listener `json:"listeners"`

	// Status is a baton master's status file; nil for other flavors or
	// when it cannot be read.
	Status *statusfile.Master `json:"status,omitempty"`
}

// Verdict is what Classify concludes.
type Verdict struct {
	State State `json:"state"`
	// Old and New point into the observation: the masters in their roles.
	// In a settled state the one master is New for Committed, Old for
	// RolledBack and Old for Idle.
	Old      *MasterObs `json:"-"`
	New      *MasterObs `json:"-"`
	Findings []string   `json:"findings,omitempty"`
	Advice   string     `json:"advice,omitempty"`
	// Pending: the journal recorded the upgrade signal moments ago and no
	// new master has appeared yet; the state changes by itself soon (see
	// UpgradePending). A verb waits it out before acting on it.
	Pending bool `json:"-"`
}

func (v *Verdict) note(format string, args ...any) {
	v.Findings = append(v.Findings, fmt.Sprintf(format, args...))
}

// inProgress reports whether the journal says an upgrade is under way.
func (o Observation) inProgress() bool {
	return o.Journal != nil && !o.Journal.State.Settled() && o.Journal.State != Down
}

// signalPending reports whether the journal recorded the upgrade signal
// less than UpgradePending ago and has seen no new master since: one may
// still appear.
func (o Observation) signalPending() bool {
	j := o.Journal
	if j == nil || j.State != Spawning || j.New.PID != 0 || j.Updated.IsZero() || o.At.IsZero() {
		return false
	}
	return o.At.Sub(j.Updated) < UpgradePending
}

// pending marks v as waiting for a new master the signal has not produced
// yet.
func (v *Verdict) pending(o Observation) {
	v.State, v.Pending = Spawning, true
	v.note("the upgrade signal was recorded %v ago and no new master has appeared yet", o.At.Sub(o.Journal.Updated).Round(time.Millisecond))
}

// child is the new master seen as a child of m, nil when none is.
func (o Observation) child(m *MasterObs) *MasterObs {
	if o.Child != nil && o.Child.PPID == m.ID.PID {
		return o.Child
	}
	return nil
}

// Classify derives the state of the upgrade from an observation. It is pure:
// the same observation always gives the same verdict, and it never panics.
func Classify(o Observation) Verdict {
	var v Verdict
	for _, p := range []PidObs{o.Main, o.Aside} {
		switch {
		case p.Err != "":
			v.note("%s: %s", p.Path, p.Err)
		case p.Exists && p.Master == nil:
			v.note("%s names pid %d, which is not running", p.Path, p.PID)
		}
	}
	a, b := o.Main.Master, o.Aside.Master
	if a != nil && b != nil && a.ID == b.ID {
		v.State = Inconsistent
		v.note("%s and %s both name pid %d", o.Main.Path, o.Aside.Path, a.ID.PID)
		v.Advice = fmt.Sprintf("remove the stale one of %s and %s", o.Main.Path, o.Aside.Path)
		return v
	}
	var j JournalSummary
	if o.Journal != nil {
		j = *o.Journal
	}
	switch {
	case a == nil && b == nil:
		v.State = Down
		if o.inProgress() {
			v.State = Inconsistent
			v.note("the journal says %s, but no master runs", j.State)
			v.Advice = "start the server again; no master is left to roll back to"
		}
	case b == nil:
		classifySingle(&v, o, a, j)
	case a == nil:
		classifyAside(&v, o, b, j)
	default:
		old, nu := b, a
		if o.AsideHoldsNew {
			old, nu = a, b
		}
		classifyPair(&v, o, old, nu, j)
	}
	return v
}

// classifySingle: only the master named by <pidfile> runs.
func classifySingle(v *Verdict, o Observation, m *MasterObs, j JournalSummary) {
	v.Old = m
	if len(m.ChildMasters) > 0 || (m.Status != nil && m.Status.UpgradePending) {
		v.State, v.New = Spawning, o.child(m)
		v.note("master %d has a new master starting (%v)", m.ID.PID, m.ChildMasters)
		return
	}
	if m.ID == j.Old && o.signalPending() {
		v.pending(o)
		return
	}
	if len(m.Workers) == 0 {
		v.note("master %d has no workers", m.ID.PID)
	}
	switch {
	case o.Journal == nil:
		v.State = Idle
	case m.ID == j.New && j.New.PID != 0:
		v.State, v.Old, v.New = Committed, nil, m
		if j.State != Committed {
			v.note("the old master %s is gone; the new master %s serves (journal said %s)", j.Old, m.ID, j.State)
		}
		if o.OldRuns {
			// It removed its pid file first (unicorn, gunicorn), then exits.
			v.State = Committing
			v.note("the old master %s removed its pid file and is still exiting", j.Old)
			v.Advice = "baton upgrade commit waits for it"
			return
		}
		if o.Aside.Exists && o.Aside.Master == nil && o.Aside.PID == j.Old.PID && j.Old.PID != 0 {
			// Killed before it could remove its pid file.
			v.State = Committing
			v.note("%s still names the dead old master %d", o.Aside.Path, j.Old.PID)
			v.Advice = "baton upgrade commit removes it"
		}
	case m.ID == j.Old && j.Old.PID != 0 && o.inProgress():
		if len(m.Workers) > 0 {
			v.State = RolledBack
			if j.State != RollingBack {
				v.note("the new master %s is gone; the old master %s serves again (journal said %s)", j.New, m.ID, j.State)
			}
			return
		}
		v.State = Inconsistent
		v.note("the new master %s is gone and the old master %s has no workers", j.New, m.ID)
		v.Advice = "baton upgrade rollback brings the old master's workers back"
	case m.ID == j.Old && j.Old.PID != 0 && j.State == RolledBack:
		v.State = RolledBack
	default:
		v.State = Idle
		if o.inProgress() {
			v.note("master %s is neither of the journal's masters (%s, %s): they changed behind baton's back", m.ID, j.Old, j.New)
		}
	}
}

// classifyAside: only the master named by the aside file runs.
func classifyAside(v *Verdict, o Observation, m *MasterObs, j JournalSummary) {
	if o.AsideHoldsNew {
		// gunicorn: the new master outlived the old one and renames its pid
		// file within a second.
		v.New = m
		v.State = Committing
		v.note("the old master is gone; new master %d has not yet renamed %s", m.ID.PID, o.Aside.Path)
		return
	}
	v.Old = m
	if len(m.ChildMasters) > 0 {
		v.State, v.New = Spawning, o.child(m)
		v.note("master %d has a new master starting (%v) that has not written %s yet", m.ID.PID, m.ChildMasters, o.Main.Path)
		return
	}
	if m.ID == j.Old && o.signalPending() {
		// Renamed its pid file, not yet forked (nginx, unicorn).
		v.pending(o)
		return
	}
	if o.inProgress() && j.State == RollingBack {
		v.State = RollingBack
		return
	}
	v.State = Inconsistent
	v.note("old master %d is parked at %s and no new master runs", m.ID.PID, o.Aside.Path)
	v.Advice = "baton upgrade rollback restores the pid file and the old master's workers"
}

// classifyPair: both pid files name live masters.
func classifyPair(v *Verdict, o Observation, old, nu *MasterObs, j JournalSummary) {
	v.Old, v.New = old, nu
	if nu.PPID != old.ID.PID {
		v.State = Inconsistent
		v.note("masters %d and %d both run but %d is not the parent of %d", old.ID.PID, nu.ID.PID, old.ID.PID, nu.ID.PID)
		v.Advice = fmt.Sprintf("stop the master that should not run; baton will not guess (%s, %s)", o.Main.Path, o.Aside.Path)
		return
	}
	if o.Journal != nil && (j.Old != old.ID || j.New != nu.ID) && o.inProgress() {
		v.note("the masters (%s, %s) are not the journal's (%s, %s)", old.ID, nu.ID, j.Old, j.New)
	}
	if o.inProgress() && j.Old == old.ID {
		switch j.State {
		case Committing, RollingBack:
			v.State = j.State
			return
		}
	}
	newReady := len(nu.Workers) > 0 && (nu.Status == nil || nu.Status.Ready)
	oldDrained := len(old.Workers) <= o.DrainFloor
	switch {
	case !newReady && len(old.Workers) == 0:
		v.State = Inconsistent
		v.note("no workers serve: the old master is drained and the new one has none ready")
		v.Advice = "baton upgrade rollback brings the old master's workers back"
	case !newReady:
		v.State = Spawning
	case oldDrained:
		v.State = Drained
	case o.inProgress() && j.State == Drained && j.Old == old.ID:
		// Parked with workers: the flavor ignored the drain (see
		// Flavor.DrainIgnored) and baton recorded that it went on.
		v.State = Drained
	case o.inProgress() && j.State == Draining && j.Old == old.ID:
		v.State = Draining
	default:
		v.State = Spawned
	}
}
