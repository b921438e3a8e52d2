package procs

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real record, from cat reading its own /proc/self/stat.
const realStat = "22148 (cat) R 22143 22143 6393 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 83237 3133440 410 18446744073709551615 94300486017024 94300486036905 140724603493648 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94300486052912 94300486054528 94301175402496 140724603501249 140724603501269 140724603501269 140724603502571 0\n"

// formatStat writes the fields ParseStat reads as a /proc/PID/stat record,
// with the fields it skips zeroed.
func formatStat(s Stat) []byte {
	var b []byte
	b = strconv.AppendInt(b, int64(s.PID), 10)
	b = append(b, " ("...)
	b = append(b, s.Comm...)
	b = append(b, ") "...)
	b = append(b, s.State, ' ')
	b = strconv.AppendInt(b, int64(s.PPID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(s.Group), 10) // field 5, pgrp
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(s.Session), 10)
	b = append(b, " 0 0 "...) // fields 7 and 8
	b = strconv.AppendUint(b, uint64(s.Flags), 10)
	b = append(b, strings.Repeat(" 0", 9)...) // fields 10 to 18
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(s.Nice), 10) // field 19
	b = append(b, " 0 0 "...)                   // fields 20 and 21
	b = strconv.AppendUint(b, s.Start, 10)
	b = append(b, " 3133440 410 18446744073709551615\n"...)
	return b
}

type parsedFields struct {
	pid, ppid, group, session int
	flags                     uint32
	nice                      int
	state                     byte
	start                     uint64
	comm                      string
}

// statKey is what ParseStat fills in, comparable.
func statKey(s Stat) parsedFields {
	return parsedFields{s.PID, s.PPID, s.Group, s.Session, s.Flags, s.Nice, s.State, s.Start, s.Comm}
}

// withComm replaces the comm of realStat.
func withComm(comm string) string { return strings.Replace(realStat, "(cat)", "("+comm+")", 1) }

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Stat // PID 0: an error is expected
	}{
		{"real", realStat, Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Start: 83237, Comm: "cat"}},
		{"comm with spaces", withComm("tmux: server"), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Start: 83237, Comm: "tmux: server"}},
		{"comm with parens", withComm("a) b (c"), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Start: 83237, Comm: "a) b (c"}},
		{"comm faking fields", withComm("x) Z 1 1 1 ("), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Start: 83237, Comm: "x) Z 1 1 1 ("}},
		{"comm with newline", withComm("a\nb)"), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Start: 83237, Comm: "a\nb)"}},
		{"empty comm", withComm(""), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Start: 83237, Comm: ""}},
		{"zombie", strings.Replace(realStat, ") R ", ") Z ", 1), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'Z', Start: 83237, Comm: "cat"}},
		{"init", "1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 2 1 2 3\n", Stat{PID: 1, PPID: 0, Group: 1, Session: 1, Flags: 4194560, State: 'S', Start: 2, Comm: "systemd"}},
		{"no trailing newline", strings.TrimSuffix(realStat, "\n"), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Start: 83237, Comm: "cat"}},
		{"forked, not execed", strings.Replace(realStat, " -1 4194304 ", " -1 4194368 ", 1), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194368, State: 'R', Start: 83237, Comm: "cat"}},
		{"niced", strings.Replace(realStat, " 20 0 1 0 83237 ", " 30 10 1 0 83237 ", 1), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Nice: 10, Start: 83237, Comm: "cat"}},
		{"negative nice", strings.Replace(realStat, " 20 0 1 0 83237 ", " 0 -20 1 0 83237 ", 1), Stat{PID: 22148, PPID: 22143, Group: 22143, Session: 6393, Flags: 4194304, State: 'R', Nice: -20, Start: 83237, Comm: "cat"}},
		{"empty", "", Stat{}},
		{"released", "30363 (churn) X 0 -1 -1 0 -1 4194368 1 2 3 4 5 6 7 8 20 0 1 0 83237 1 2 3\n", Stat{}},
		{"no comm", "1 S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 2\n", Stat{}},
		{"unclosed comm", "1 (cat S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 2\n", Stat{}},
		{"pid zero", strings.Replace(realStat, "22148", "0", 1), Stat{}},
		{"negative pid", strings.Replace(realStat, "22148", "-5", 1), Stat{}},
		{"signed pid", strings.Replace(realStat, "22148", "+5", 1), Stat{}},
		{"no space before comm", strings.Replace(realStat, "22148 (", "22148(", 1), Stat{}},
		{"no space after comm", strings.Replace(realStat, ") R", ")R", 1), Stat{}},
		{"truncated", realStat[:60], Stat{}},
		{"state not a letter", strings.Replace(realStat, ") R ", ") 7 ", 1), Stat{}},
		{"long state", strings.Replace(realStat, ") R ", ") RS ", 1), Stat{}},
		{"bad ppid", strings.Replace(realStat, " R 22143 ", " R x ", 1), Stat{}},
		{"bad pgrp", strings.Replace(realStat, " 22143 6393 ", " x 6393 ", 1), Stat{}},
		{"bad session", strings.Replace(realStat, " 22143 6393 ", " 22143 -6393 ", 1), Stat{}},
		{"bad flags", strings.Replace(realStat, " -1 4194304 ", " -1 x ", 1), Stat{}},
		{"flags overflow", strings.Replace(realStat, " -1 4194304 ", " -1 4294967296 ", 1), Stat{}},
		{"bad nice", strings.Replace(realStat, " 20 0 1 0 83237 ", " 20 x 1 0 83237 ", 1), Stat{}},
		{"nice out of range", strings.Replace(realStat, " 20 0 1 0 83237 ", " 20 20 1 0 83237 ", 1), Stat{}},
		{"starttime overflow", strings.Replace(realStat, " 83237 ", " 99999999999999999999999 ", 1), Stat{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tc.in))
			if tc.want.PID == 0 {
				if err == nil {
					t.Fatalf("ParseStat(%q) = %+v, want an error", tc.in, got)
				}
				if !strings.HasPrefix(err.Error(), "procs: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				// A task being released (do_task_stat could not lock it)
				// is gone, not malformed: a read of a child's stat file
				// racing its reap must not fail the caller.
				if gone := errors.Is(err, ErrGone); gone != (tc.name == "released") {
					t.Errorf("error %q: matches ErrGone %v", err, gone)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if statKey(got) != statKey(tc.want) {
				t.Errorf("ParseStat = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzParseStat checks that ParseStat never panics, that what it accepts is
// sane, and that a parsed record formatted again parses to the same fields.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte(realStat))
	f.Add([]byte(withComm("tmux: server")))                                        // spaces
	f.Add([]byte(withComm("a) b (c")))                                             // parentheses inside
	f.Add([]byte(withComm(")")))                                                   // a lone ')'
	f.Add([]byte(withComm("x) Z 1 1 1 (")))                                        // fake fields inside comm
	f.Add([]byte(withComm("a\nb")))                                                // newline
	f.Add([]byte(withComm("")))                                                    // empty comm
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 2\n")) // ppid 0
	f.Add([]byte(""))                                                              // empty file
	f.Add([]byte("5 (x) R"))                                                       // truncated
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStat(b)
		if err != nil {
			return
		}
		if st.PID <= 0 || st.PID > maxPID || st.PPID < 0 || st.PPID > maxPID || st.Group < 0 || st.Group > maxPID {
			t.Fatalf("ParseStat(%q) accepted pid %d ppid %d pgrp %d", b, st.PID, st.PPID, st.Group)
		}
		if !isLetter(st.State) {
			t.Fatalf("ParseStat(%q) accepted state %q", b, st.State)
		}
		if !bytes.Contains(b, []byte("("+st.Comm+")")) {
			t.Fatalf("ParseStat(%q): comm %q is not between parentheses in the input", b, st.Comm)
		}
		again, err := ParseStat(formatStat(st))
		if err != nil {
			t.Fatalf("ParseStat(formatStat(%+v)): %v", st, err)
		}
		if statKey(again) != statKey(st) {
			t.Fatalf("round trip: %+v became %+v", st, again)
		}
	})
}

func TestTicksToWall(t *testing.T) {
	boot := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		ticks uint64
		want  time.Duration
	}{
		{"at boot", 0, 0},
		{"one tick", 1, 10 * time.Millisecond},
		{"seconds and ticks", 83237, 832*time.Second + 370*time.Millisecond},
		{"a year", 100 * 86400 * 365, 365 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ticksToWall(boot, tc.ticks); !got.Equal(boot.Add(tc.want)) {
				t.Errorf("ticksToWall(%d) = %v, want boot+%v", tc.ticks, got, tc.want)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"argv", "/usr/bin/gunicorn\x00-w\x002\x00app:app\x00", []string{"/usr/bin/gunicorn", "-w", "2", "app:app"}},
		{"nginx title padded with NULs", "nginx: worker process\x00\x00\x00\x00\x00", []string{"nginx: worker process"}},
		{"title without NUL", "unicorn master -c u.rb", []string{"unicorn master -c u.rb"}},
		{"empty argument kept", "prog\x00\x00last\x00", []string{"prog", "", "last"}},
		{"zombie", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := splitCmdline([]byte(tc.in))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("splitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseStatusUID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{"root", "Name:\tcat\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", 0, false},
		{"real differs from effective", "Name:\tsu\nUid:\t1000\t0\t0\t0\n", 1000, false},
		{"nobody", "Uid:\t65534\t65534\t65534\t65534\n", 65534, false},
		{"no Uid line", "Name:\tcat\nGid:\t0\t0\t0\t0\n", 0, true},
		{"garbage uid", "Uid:\tx\t0\t0\t0\n", 0, true},
		{"empty Uid", "Uid:\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatusUID([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStatusUID = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestCutDeleted(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		deleted        bool
	}{
		{"live", "/usr/sbin/nginx", "/usr/sbin/nginx", false},
		{"deleted", "/usr/sbin/nginx (deleted)", "/usr/sbin/nginx", true},
		{"name with parens", "/opt/a (deleted) b", "/opt/a (deleted) b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, deleted := cutDeleted(tc.in)
			if got != tc.want || deleted != tc.deleted {
				t.Errorf("cutDeleted(%q) = %q, %v", tc.in, got, deleted)
			}
		})
	}
}
