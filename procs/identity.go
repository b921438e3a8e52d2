package procs

import "fmt"

// Identity names one process for its whole life. A pid alone is handed to the
// next process once the old one is reaped; a pid plus start time is unique
// unless the whole pid space (kernel.pid_max) is cycled within one clock tick
// (10 ms), which does not happen in practice.
type Identity struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // clock ticks since boot, /proc/PID/stat field 22
}

// String formats the identity as "PID@START".
func (id Identity) String() string { return fmt.Sprintf("%d@%d", id.PID, id.Start) }
