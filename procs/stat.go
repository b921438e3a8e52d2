package procs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is the unit of /proc/PID/stat field 22 (starttime): USER_HZ, the
// value of sysconf(_SC_CLK_TCK). The kernel fixes it at 100 on every Linux
// architecture Go supports, whatever CONFIG_HZ is, because it is ABI
// (include/asm-generic/param.h), so procs does not ask libc for it.
const ClockTicks = 100

// errMalformed is wrapped by ParseStat errors.
var errMalformed = errors.New("malformed")

// Stat is what /proc says about one process. The zero value describes no
// process. Fields that /proc would not show are empty: Exe, Cwd and Cmdline of
// a zombie or a kernel thread, and Exe and Cwd of another user's process when
// the caller lacks CAP_SYS_PTRACE (proc(5), "ptrace access mode").
type Stat struct {
	PID        int
	PPID       int
	State      byte   // R, S, D, Z, T, ...
	Group      int    // process group id (field 5): a process that called setpgid(2) or setsid(2) leads its own
	Session    int    // session id (field 6): a daemon that called setsid(2) leads its own
	Flags      uint32 // the kernel's PF_* flags (field 9); see Forked
	Nice       int    // nice value (field 19), -20 to 19; a thread's own in /proc/PID/task/TID/stat
	UID        int    // real uid
	Start      uint64
	StartTime  time.Time // wall-clock start, accurate to a clock tick
	Comm       string
	Exe        string // /proc/PID/exe with " (deleted)" removed
	ExeDeleted bool   // the executable was replaced or removed on disk
	Cwd        string // /proc/PID/cwd with " (deleted)" removed
	CwdDeleted bool
	Cmdline    []string
}

// Identity returns the process's identity.
func (s Stat) Identity() Identity { return Identity{PID: s.PID, Start: s.Start} }

// pfForkNoExec is PF_FORKNOEXEC (include/linux/sched.h): set by fork(2) and
// clone(2), cleared by execve(2).
const pfForkNoExec = 0x40

// Forked reports whether the process has not called execve(2) since it was
// forked: a worker nginx, unicorn or gunicorn forked (which never execs),
// or any child in the moment between fork and exec, when it still shows its
// parent's command line and title. A new master always execs, so a child
// that is Forked is not (yet) one, whatever its title says.
func (s Stat) Forked() bool { return s.Flags&pfForkNoExec != 0 }

// Zombie reports whether the process has exited but is not yet reaped.
func (s Stat) Zombie() bool { return s.State == 'Z' }

// ParseStat parses the contents of /proc/PID/stat. It fills PID, Comm, State,
// PPID, Group, Session, Flags, Nice and Start and leaves the other fields
// zero.
//
// The command name (field 2) is printed between parentheses without any
// escaping and may itself hold spaces, parentheses and even newlines (a
// process can name itself anything with prctl(PR_SET_NAME) or be run through
// a symlink with such a name), so the name ends at the LAST ')' of the record:
// no later field can contain one.
func ParseStat(b []byte) (Stat, error) {
	st, err := parseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("procs: parse stat: %w", err)
	}
	return st, nil
}

// parseStat is ParseStat with errors that name no package, for callers that
// say which file it was.
func parseStat(b []byte) (Stat, error) {
	s := string(b)
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("%w: no (comm) field", errMalformed)
	}
	pidText, ok := strings.CutSuffix(s[:open], " ")
	if !ok {
		return Stat{}, fmt.Errorf("%w: no space before (comm)", errMalformed)
	}
	pid, ok := parseDecimal(pidText)
	if !ok || pid <= 0 || pid > maxPID {
		return Stat{}, fmt.Errorf("%w: pid %q", errMalformed, pidText)
	}
	rest := s[end+1:]
	if !strings.HasPrefix(rest, " ") {
		return Stat{}, fmt.Errorf("%w: no space after (comm)", errMalformed)
	}
	// Fields 3 (state) to 22 (starttime) and more follow, one space apart.
	fields := strings.Fields(rest)
	if len(fields) < 20 {
		return Stat{}, fmt.Errorf("%w: %d fields after (comm), want at least 20", errMalformed, len(fields))
	}
	state := fields[0]
	if len(state) != 1 || !isLetter(state[0]) {
		return Stat{}, fmt.Errorf("%w: state %q", errMalformed, state)
	}
	ppid, ok := parseDecimal(fields[1])
	if !ok || ppid > maxPID { // 0 for init and kernel threads
		return Stat{}, fmt.Errorf("%w: ppid %q", errMalformed, fields[1])
	}
	if fields[2] == "-1" && fields[3] == "-1" {
		// do_task_stat leaves pgrp and session at -1 (and ppid at 0) when
		// it cannot lock the task's signal handlers: the process is being
		// released, after its parent reaped it.
		return Stat{}, &goneError{pid: int(pid), released: true}
	}
	group, ok := parseDecimal(fields[2])
	if !ok || group > maxPID { // 0 for kernel threads
		return Stat{}, fmt.Errorf("%w: pgrp %q", errMalformed, fields[2])
	}
	session, ok := parseDecimal(fields[3])
	if !ok || session > maxPID { // 0 for kernel threads
		return Stat{}, fmt.Errorf("%w: session %q", errMalformed, fields[3])
	}
	flags, ok := parseDecimalU64(fields[6])
	if !ok || flags > 1<<32-1 {
		return Stat{}, fmt.Errorf("%w: flags %q", errMalformed, fields[6])
	}
	nice, err := strconv.Atoi(fields[16])
	if err != nil || nice < -20 || nice > 19 {
		return Stat{}, fmt.Errorf("%w: nice %q", errMalformed, fields[16])
	}
	start, ok := parseDecimalU64(fields[19])
	if !ok {
		return Stat{}, fmt.Errorf("%w: starttime %q", errMalformed, fields[19])
	}
	return Stat{
		PID:     pid,
		PPID:    int(ppid),
		State:   state[0],
		Group:   group,
		Session: session,
		Flags:   uint32(flags),
		Nice:    nice,
		Start:   start,
		Comm:    s[open+1 : end],
	}, nil
}

// maxPID is PID_MAX_LIMIT on 64-bit kernels (4194304, include/linux/threads.h).
const maxPID = 1 << 22

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// parseDecimal accepts only ASCII digits (no sign, no spaces) and values that
// fit an int32, as pids do; callers check the range they need.
func parseDecimal(s string) (int, bool) {
	v, ok := parseDecimalU64(s)
	if !ok || v > 1<<31 {
		return 0, false
	}
	return int(v), true
}

func parseDecimalU64[T string | []byte](s T) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// ticksToWall converts a start time in clock ticks since boot to wall-clock
// time, given the boot instant.
func ticksToWall(boot time.Time, ticks uint64) time.Time {
	sec := ticks / ClockTicks
	frac := ticks % ClockTicks
	return boot.Add(time.Duration(sec)*time.Second + time.Duration(frac)*(time.Second/ClockTicks))
}

// splitCmdline splits /proc/PID/cmdline at NUL bytes. Programs that rewrite
// their argv as a title (nginx, unicorn, gunicorn with setproctitle) leave a
// single string with spaces, padded with NULs: the trailing empty strings are
// dropped, so the title is one element.
func splitCmdline(b []byte) []string {
	s := strings.TrimRight(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// cutDeleted strips the " (deleted)" suffix the kernel appends to the target
// of /proc/PID/exe and cwd when the file or directory was unlinked
// (d_path(9), fs/d_path.c).
func cutDeleted(target string) (string, bool) {
	return strings.CutSuffix(target, " (deleted)")
}

// parseStatusUID returns the real uid from the "Uid:" line of
// /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs").
func parseStatusUID(status []byte) (int, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			break
		}
		uid, ok := parseDecimalU64(string(f[0]))
		if !ok || uid > 1<<32-1 {
			break
		}
		return int(uid), nil
	}
	return 0, fmt.Errorf("%w: no Uid line", errMalformed)
}
