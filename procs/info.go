package procs

import "time"

// Info reads /proc/PID. A missing process is an error wrapping ErrGone (and
// fs.ErrNotExist). A zombie is not an error: Info returns it with State 'Z'
// and empty Exe, Cwd and Cmdline, so callers can report it; every other
// function of the package treats it as gone.
//
// All files are read relative to one open /proc/PID directory, so the result
// never mixes two processes even if the pid is reused meanwhile.
func Info(pid int) (Stat, error) { return info(pid) }

// StartTime returns when pid started, accurate to a clock tick (1/ClockTicks
// s). Its error wraps ErrGone and fs.ErrNotExist when the process is gone or
// a zombie. Its signature fits pidfile.Probe.
func StartTime(pid int) (time.Time, error) { return startTime(pid) }
