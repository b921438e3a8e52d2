package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/procs"
)

// JournalPath is where the journal of the master with pid file pidfile
// lives.
func JournalPath(pidfile string) string { return pidfile + ".upgrade.json" }

// Journal records what baton did to one pid file's masters and when: the
// current state, both masters' identities and every transition. It explains
// and lets a later invocation resume; Classify decides what is true.
type Journal struct {
	State   State          `json:"state"`
	Flavor  string         `json:"flavor"`
	Pidfile string         `json:"pidfile"`
	Old     procs.Identity `json:"old"`
	New     procs.Identity `json:"new"`
	// OldByUpgrade: the old master is the new master of the committed
	// upgrade this journal recorded before.
	OldByUpgrade bool `json:"old_by_upgrade,omitempty"`
	OldWorkers   int  `json:"old_workers"` // the old master's workers before the drain
	Workers      int  `json:"workers"`     // the new master's workers wanted
	DrainedTo    int  `json:"drained_to"`  // old workers the drain left (a flavor's floor)
	// DrainedWorkers are the old workers told to drain.
	DrainedWorkers []procs.Identity `json:"drained_workers"`
	// NewWorkers are the new master's workers as seen (and, once a
	// rollback stops it, everything below them): what of them outlives
	// the new master and holds the listeners is the new generation's to a
	// rollback's sweep, while it is the same identity.
	NewWorkers []procs.Identity `json:"new_workers"`
	// Respawned counts the Respawn signals a rollback sent where each adds
	// a worker (RespawnAdds), and RespawnBase the count they add to: an
	// orchestrator resuming a killed rollback counts those still on their
	// way instead of sending more.
	Respawned   int          `json:"respawned,omitempty"`
	RespawnBase int          `json:"respawn_base,omitempty"`
	Started     time.Time    `json:"started"`
	Updated     time.Time    `json:"updated"`
	Transitions []Transition `json:"transitions"`
}

// Transition is one recorded step.
type Transition struct {
	At    time.Time `json:"at"`
	From  State     `json:"from"`
	Event Event     `json:"event"`
	To    State     `json:"to"`
	By    int       `json:"by"` // pid of the orchestrator
	Note  string    `json:"note,omitempty"`
}

// Summary is the part of the journal Classify needs.
func (j *Journal) Summary() *JournalSummary {
	if j == nil {
		return nil
	}
	return &JournalSummary{State: j.State, Old: j.Old, New: j.New, Updated: j.Updated}
}

// MaxJournalSize bounds the journal read: a real one is a few kilobytes.
const MaxJournalSize = 1 << 20

// ReadJournal reads the journal at path. A missing journal is (nil, nil).
//
// The journal decides which processes baton signals, so it is read like a
// pid file: never through a symlink, only a regular file with one link,
// owned by root or baton's euid and writable by nobody else, at most
// MaxJournalSize bytes, and (as root) in directories only root can change
// (pidfile.Options.ReadState). Another user could have planted anything
// else, in a sticky world-writable directory say; such a file, or one that
// does not decode, is an error wrapping ErrBadInput that names it.
func ReadJournal(path string) (*Journal, error) {
	return readJournal(path)
}

// WriteJournal writes j to path atomically (pidfile.Options.WriteState: a
// temporary file created O_EXCL|O_NOFOLLOW beside path, renamed over it;
// those a killed orchestrator left are removed once a minute old, and at
// once by the next Machine verb that takes the lock). It refuses,
// with an error wrapping ErrBadInput, to replace a file at path that
// ReadJournal would refuse as unsafe — one another user could have planted
// — so that the operator sees it rather than baton quietly carrying on.
func WriteJournal(path string, j *Journal) error {
	if err := writeJournal(path, j); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	return nil
}

// readJournal is ReadJournal; its errors wrap ErrBadInput, which carries
// the package prefix.
func readJournal(path string) (*Journal, error) {
	data, _, err := pidfile.Options{}.ReadState(path, MaxJournalSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: journal: %w", ErrBadInput, err)
	}
	j, err := decodeJournal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: journal %s: %w", ErrBadInput, path, err)
	}
	return j, nil
}

// decodeJournal decodes and validates a journal: known states and events,
// no trailing data, no negative pid or count.
func decodeJournal(data []byte) (*Journal, error) {
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, err
	}
	ids := append(append([]procs.Identity{j.Old, j.New}, j.DrainedWorkers...), j.NewWorkers...)
	for _, id := range ids {
		if id.PID < 0 {
			return nil, fmt.Errorf("negative pid %d", id.PID)
		}
	}
	if j.OldWorkers < 0 || j.Workers < 0 || j.DrainedTo < 0 {
		return nil, fmt.Errorf("negative worker count (%d, %d, %d)", j.OldWorkers, j.Workers, j.DrainedTo)
	}
	for _, t := range j.Transitions {
		if t.By < 0 {
			return nil, fmt.Errorf("negative orchestrator pid %d", t.By)
		}
	}
	return &j, nil
}

// writeJournal is WriteJournal without the package prefix, for the
// Machine, whose errors get it once.
func writeJournal(path string, j *Journal) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encode journal %s: %w", path, err)
	}
	if err := checkReplace(path, MaxJournalSize); err != nil {
		return fmt.Errorf("%w: journal: refusing to replace %s: %w", ErrBadInput, path, err)
	}
	if err := (pidfile.Options{}).WriteState(path, append(data, '\n')); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

// checkReplace returns nil when path is missing or passes the checks of
// pidfile.Options.OpenState and is at most limit bytes long.
func checkReplace(path string, limit int64) error {
	f, err := pidfile.Options{}.OpenState(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > limit {
		return fmt.Errorf("%w: %s is %d bytes, longer than %d", pidfile.ErrMalformed, path, fi.Size(), limit)
	}
	return nil
}

// record applies ev to the journal's state through the transition table and
// appends the transition. EvReconcile sets the state to what was observed.
func (j *Journal) record(now time.Time, by int, ev Event, observed State, note string) error {
	from := j.State
	to := observed
	if ev != EvReconcile {
		var err error
		if to, err = Next(from, ev); err != nil {
			return err
		}
	}
	j.State = to
	j.Updated = now
	j.Transitions = append(j.Transitions, Transition{At: now, From: from, Event: ev, To: to, By: by, Note: note})
	return nil
}

// spawnedAt is when the upgrade signal of this upgrade was recorded; zero
// when it was not.
func (j *Journal) spawnedAt() time.Time {
	for i := len(j.Transitions) - 1; i >= 0; i-- {
		if j.Transitions[i].Event == EvSpawn {
			return j.Transitions[i].At
		}
	}
	return time.Time{}
}

// drainSent reports whether the drain signal was sent in this upgrade.
func (j *Journal) drainSent() bool {
	for i := len(j.Transitions) - 1; i >= 0; i-- {
		switch j.Transitions[i].Event {
		case EvDrain:
			return true
		case EvSpawn:
			return false
		}
	}
	return j.State == Draining || j.State == Drained
}

// The Machine writes the journal only through the methods below.

// saveJournal writes the journal as it is.
func (m *Machine) saveJournal() error {
	defer m.span("journal")()
	return writeJournal(JournalPath(m.opts.Pidfile), m.j)
}

// record moves the journal and writes it.
func (m *Machine) record(ev Event, observed State, note string) error {
	if m.j == nil {
		m.j = &Journal{Flavor: m.flavor.Name, Pidfile: m.opts.Pidfile, Started: m.sys.Now()}
	}
	if err := m.j.record(m.sys.Now(), os.Getpid(), ev, observed, note); err != nil {
		return err
	}
	return m.saveJournal()
}

// mustRecord records a transition the procedure has already made happen; a
// journal write failing then is a warning, not a reason to stop half-way.
func (m *Machine) mustRecord(ev Event, note string) {
	if err := m.record(ev, 0, note); err != nil {
		m.warn("%v", err)
	}
}

// pinNew records the new master as soon as it is seen, before any event
// does: a rollback after a crash then knows whom to stop before a pid file
// names it. A failed write is a warning.
func (m *Machine) pinNew(id procs.Identity) {
	m.j.New = id
	if err := m.saveJournal(); err != nil {
		m.warn("%v", err)
	}
}

// adopt takes the masters of a verdict into the journal (a later
// invocation, or masters that changed behind baton's back).
func (m *Machine) adopt(v Verdict) {
	if m.j == nil {
		m.j = &Journal{Flavor: m.flavor.Name, Pidfile: m.opts.Pidfile, Started: m.sys.Now(), State: v.State}
		m.step("reconcile", "no journal: found an upgrade in state %s", v.State)
	}
	if v.Old != nil {
		m.j.Old = v.Old.ID
		if m.j.Workers == 0 {
			m.j.Workers = max(len(v.Old.Workers), 1)
		}
	}
	if v.New != nil {
		m.j.New = v.New.ID
		if m.j.Workers == 0 || m.j.OldWorkers == 0 {
			m.j.Workers = max(m.j.Workers, len(v.New.Workers))
		}
	}
	if m.j.State != v.State {
		if err := m.record(EvReconcile, v.State, "adopted the observed masters"); err != nil {
			m.warn("%v", err)
		}
	}
}
