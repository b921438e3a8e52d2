package upgrade

import (
	"errors"
	"fmt"
)

// State is where an upgrade stands. The zero value is Idle.
type State uint8

const (
	// Idle: one master named by the pid file, no upgrade under way.
	Idle State = iota
	// Down: no live master; nothing to upgrade.
	Down
	// Spawning: USR2 was sent (or a new master is pending) and the new
	// master is not yet verified.
	Spawning
	// Spawned: the new master runs beside the old one, holds the same
	// listeners, has its workers and passes the checks.
	Spawned
	// Draining: the drain signal was sent to the old master; its workers
	// are finishing.
	Draining
	// Drained: the old master is parked (alive, listeners held, no
	// workers); the new generation serves alone. Commit or roll back.
	Drained
	// Committing: the old master was told to stop.
	Committing
	// Committed: the old master is gone; the new one is named by the pid
	// file. Equivalent to Idle for the next upgrade.
	Committed
	// RollingBack: the old master is getting its workers back and the new
	// master is being stopped.
	RollingBack
	// RolledBack: the new master is gone; the old one is named by the pid
	// file again and serves. Equivalent to Idle for the next upgrade.
	RolledBack
	// Inconsistent: what is observed fits no step of the procedure; an
	// operator has to act (Report.Advice says how).
	Inconsistent

	numStates
)

var stateTable = nameTable[State]{typ: "State", noun: "state", names: stateNames[:]}

var stateNames = [numStates]string{
	Idle:         "idle",
	Down:         "down",
	Spawning:     "spawning",
	Spawned:      "spawned",
	Draining:     "draining",
	Drained:      "drained",
	Committing:   "committing",
	Committed:    "committed",
	RollingBack:  "rolling-back",
	RolledBack:   "rolled-back",
	Inconsistent: "inconsistent",
}

func (s State) String() string { return stateTable.String(s) }

// Valid reports whether s is one of the declared states.
func (s State) Valid() bool { return s < numStates }

// Settled reports whether no upgrade is under way in s: a new one may start.
func (s State) Settled() bool { return s == Idle || s == Committed || s == RolledBack }

// MarshalText encodes the state by name, for the journal and --json.
func (s State) MarshalText() ([]byte, error) { return stateTable.MarshalText(s) }

// UnmarshalText decodes a state name.
func (s *State) UnmarshalText(b []byte) error { return stateTable.UnmarshalText(s, b) }

// Event moves the machine from one state to another.
type Event uint8

const (
	EvSpawn      Event = iota // USR2 sent to the old master
	EvSpawned                 // new master verified
	EvDrain                   // drain signal sent to the old master
	EvDrained                 // old workers gone
	EvCommit                  // graceful stop sent to the old master
	EvCommitted               // old master gone, pid file names the new one
	EvRollback                // rollback begun
	EvRolledBack              // new master gone, old serving, pid file restored
	EvBreak                   // a step failed and left no clean state
	EvReconcile               // the journal was reset to what is observed

	numEvents
)

var eventTable = nameTable[Event]{typ: "Event", noun: "event", names: eventNames[:]}

var eventNames = [numEvents]string{
	EvSpawn:      "spawn",
	EvSpawned:    "spawned",
	EvDrain:      "drain",
	EvDrained:    "drained",
	EvCommit:     "commit",
	EvCommitted:  "committed",
	EvRollback:   "rollback",
	EvRolledBack: "rolled-back",
	EvBreak:      "break",
	EvReconcile:  "reconcile",
}

func (e Event) String() string { return eventTable.String(e) }

// MarshalText encodes the event by name.
func (e Event) MarshalText() ([]byte, error) { return eventTable.MarshalText(e) }

// UnmarshalText decodes an event name.
func (e *Event) UnmarshalText(b []byte) error { return eventTable.UnmarshalText(e, b) }

// nameTable gives a small enum (State, Event) its String and text encoding
// by name: names[v] is the name of v, and a value past the table is invalid.
type nameTable[T ~uint8] struct {
	typ   string   // the type's name, for String of an undeclared value
	noun  string   // what a value is called in errors
	names []string // indexed by value
}

func (t nameTable[T]) String(v T) string {
	if int(v) < len(t.names) {
		return t.names[v]
	}
	return fmt.Sprintf("%s(%d)", t.typ, uint8(v))
}

func (t nameTable[T]) MarshalText(v T) ([]byte, error) {
	if int(v) >= len(t.names) {
		return nil, fmt.Errorf("invalid %s %d", t.noun, uint8(v))
	}
	return []byte(t.names[v]), nil
}

func (t nameTable[T]) UnmarshalText(p *T, b []byte) error {
	for i, n := range t.names {
		if n == string(b) {
			*p = T(i)
			return nil
		}
	}
	return fmt.Errorf("unknown %s %q", t.noun, b)
}

// ErrIllegalTransition is wrapped by every *TransitionError.
var ErrIllegalTransition = errors.New("upgrade: illegal transition")

// TransitionError is an event that is not allowed in a state, such as a
// commit while no upgrade is under way. Like fs.PathError, its message
// says only what it carries ("cannot commit while idle"); whoever returns
// it adds the context and, at the package's edge, the prefix.
type TransitionError struct {
	From  State
	Event Event
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s while %s", e.Event, e.From)
}

func (e *TransitionError) Unwrap() error { return ErrIllegalTransition }

type edge struct {
	from State
	ev   Event
}

// transitions is the one table of the machine (see the diagram in doc.go).
// EvReconcile is handled by Next itself: it may lead anywhere, because it
// records what was observed rather than something baton did.
var transitions = map[edge]State{
	{Idle, EvSpawn}:       Spawning,
	{Committed, EvSpawn}:  Spawning,
	{RolledBack, EvSpawn}: Spawning,

	{Spawning, EvSpawned}: Spawned,
	{Spawned, EvDrain}:    Draining,
	{Draining, EvDrained}: Drained,

	{Spawned, EvCommit}:       Committing,
	{Drained, EvCommit}:       Committing,
	{Committing, EvCommit}:    Committing, // a resumed commit sends the signal again
	{Inconsistent, EvCommit}:  Committing,
	{Committing, EvCommitted}: Committed,

	{Spawning, EvRollback}:      RollingBack,
	{Spawned, EvRollback}:       RollingBack,
	{Draining, EvRollback}:      RollingBack,
	{Drained, EvRollback}:       RollingBack,
	{Committing, EvRollback}:    RollingBack, // the old master may still be alive
	{RollingBack, EvRollback}:   RollingBack, // a resumed rollback
	{Inconsistent, EvRollback}:  RollingBack,
	{RollingBack, EvRolledBack}: RolledBack,

	{Spawning, EvBreak}:    Inconsistent,
	{Spawned, EvBreak}:     Inconsistent,
	{Draining, EvBreak}:    Inconsistent,
	{Drained, EvBreak}:     Inconsistent,
	{Committing, EvBreak}:  Inconsistent,
	{RollingBack, EvBreak}: Inconsistent,
}

// Next returns the state that ev leads to from s, or a *TransitionError.
// EvReconcile is only accepted through Reconcile.
func Next(s State, ev Event) (State, error) {
	if to, ok := transitions[edge{s, ev}]; ok {
		return to, nil
	}
	return s, &TransitionError{From: s, Event: ev}
}
