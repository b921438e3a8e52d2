package pidfile

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	max := PIDMax()
	tests := []struct {
		name string
		in   string
		want int
		err  error // nil: want succeeds
	}{
		{name: "newline", in: "1234\n", want: 1234},
		{name: "bare", in: "1234", want: 1234},
		{name: "trailing-spaces", in: "42  \n", want: 42},
		{name: "crlf-and-tab", in: "42\t\r\n", want: 42},
		{name: "smallest", in: "2\n", want: 2},
		{name: "pid-max", in: strconv.Itoa(max) + "\n", want: max},
		{name: "empty", in: "", err: ErrEmpty},
		{name: "only-newline", in: "\n", err: ErrEmpty},
		{name: "only-spaces", in: "   \n\n", err: ErrEmpty},
		{name: "leading-space", in: " 1234\n", err: ErrMalformed},
		{name: "leading-newline", in: "\n1234\n", err: ErrMalformed},
		{name: "plus-sign", in: "+1234\n", err: ErrMalformed},
		{name: "negative", in: "-1234\n", err: ErrMalformed},
		{name: "hex", in: "0x1f\n", err: ErrMalformed},
		{name: "two-pids", in: "12\n34\n", err: ErrMalformed},
		{name: "space-inside", in: "12 34\n", err: ErrMalformed},
		{name: "letters", in: "12a\n", err: ErrMalformed},
		{name: "nul", in: "12\x00\n", err: ErrMalformed},
		{name: "unicode-digit", in: "١٢٣\n", err: ErrMalformed},
		{name: "leading-zero", in: "0123\n", err: ErrMalformed},
		{name: "zero", in: "0\n", err: ErrMalformed},
		{name: "init", in: "1\n", err: ErrMalformed},
		{name: "above-pid-max", in: strconv.Itoa(max+1) + "\n", err: ErrMalformed},
		{name: "overflow", in: "99999999999999999999999\n", err: ErrMalformed},
		{name: "garbage", in: strings.Repeat("x", 1000), err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.err == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q) = %d, %v; want %v", tt.in, got, err, tt.err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q): error %T is not *Error", tt.in, err)
			}
			if got != 0 {
				t.Errorf("Parse(%q) returned pid %d with an error", tt.in, got)
			}
			// The message quotes what was found, bounded.
			if e.Found != excerpt([]byte(tt.in)) {
				t.Errorf("Found = %q, want %q", e.Found, excerpt([]byte(tt.in)))
			}
			if tt.in != "" && !strings.Contains(err.Error(), strconv.Quote(e.Found)) {
				t.Errorf("message %q does not quote %q", err, e.Found)
			}
			if len(err.Error()) > 200 {
				t.Errorf("message is %d bytes long: %q", len(err.Error()), err)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{name: "sentinel", err: &Error{Path: "/run/a.pid", Err: ErrEmpty}, want: "pidfile: /run/a.pid: empty"},
		{name: "found", err: &Error{Path: "/run/a.pid", Found: "x\n", Err: ErrMalformed}, want: `pidfile: /run/a.pid: malformed (found "x\n")`},
		{name: "no-path", err: &Error{Err: ErrEmpty}, want: "pidfile: empty"},
		{name: "foreign-cause", err: &Error{Path: "/p", Err: errors.New("boom")}, want: "pidfile: /p: boom"},
		{name: "nil-cause", err: &Error{Path: "/p"}, want: "pidfile: /p: error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"1234\n",               // what every master writes
		"1234",                 // no newline (echo -n)
		"42 \t\r\n",            // trailing whitespace of every kind allowed
		"",                     // empty file: a master that crashed before writing
		"\n",                   // whitespace only
		" 1234",                // leading space: refused
		"0",                    // zero: refused
		"1\n",                  // init: refused
		"0123\n",               // leading zero: refused
		"4194304\n",            // PID_MAX_LIMIT
		"4194305\n",            // above it
		"-5\n",                 // sign
		"12\n34\n",             // two lines
		"99999999999999999999", // overflows int64
		"12\x00",               // NUL
		"١٢٣",                  // non-ASCII digits
	} {
		f.Add([]byte(seed))
	}
	max := PIDMax()
	f.Fuzz(func(t *testing.T, data []byte) {
		pid, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error wraps no parse sentinel: %v", err)
			}
			if len(e.Found) > maxFound+3 {
				t.Fatalf("Found is %d bytes", len(e.Found))
			}
			if pid != 0 {
				t.Fatalf("pid %d returned with error", pid)
			}
			return
		}
		// Anything accepted is in range ...
		if pid <= 1 || pid > max {
			t.Fatalf("accepted pid %d outside 2..%d", pid, max)
		}
		// ... is the canonical decimal form plus allowed whitespace ...
		if got := string(bytes.TrimRight(data, trailing)); got != strconv.Itoa(pid) {
			t.Fatalf("accepted %q as %d, which is not its canonical form", data, pid)
		}
		// ... and round-trips through what Create writes.
		again, err := Parse([]byte(strconv.Itoa(pid) + "\n"))
		if err != nil || again != pid {
			t.Fatalf("round trip of %d: %d, %v", pid, again, err)
		}
	})
}

func TestParseLocks(t *testing.T) {
	const sample = `1: FLOCK  ADVISORY  WRITE 1234 08:01:1317 0 EOF
1: -> FLOCK  ADVISORY  WRITE 1240 08:01:1317 0 EOF
2: POSIX  ADVISORY  WRITE 5678 fd:02:99 0 EOF
3: OFDLCK ADVISORY  READ  -1 00:2e:4242 0 EOF
4: LEASE  BREAKING  READ  77 103:05:12 0 EOF
garbage line
5: FLOCK  ADVISORY  WRITE notapid 08:01:1 0 EOF
6: FLOCK  ADVISORY  WRITE 12 08:01 0 EOF
7: FLOCK  ADVISORY  WRITE 12 zz:01:5 0 EOF
`
	got := parseLocks([]byte(sample))
	want := []lockEntry{
		{kind: "FLOCK", pid: 1234, major: 8, minor: 1, ino: 1317},
		{kind: "FLOCK", waiter: true, pid: 1240, major: 8, minor: 1, ino: 1317},
		{kind: "POSIX", pid: 5678, major: 0xfd, minor: 2, ino: 99},
		{kind: "OFDLCK", pid: -1, major: 0, minor: 0x2e, ino: 4242},
		{kind: "LEASE", pid: 77, major: 0x103, minor: 5, ino: 12},
	}
	if len(got) != len(want) {
		t.Fatalf("parseLocks: got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		t.Run(want[i].kind+"-"+strconv.Itoa(i), func(t *testing.T) {
			if got[i] != want[i] {
				t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
			}
		})
	}
}

func TestFileKeyMajorMinor(t *testing.T) {
	tests := []struct {
		name         string
		dev          uint64
		major, minor uint64
	}{
		{name: "sda1", dev: 0x801, major: 8, minor: 1},
		{name: "tmpfs-anon", dev: 0x2e, major: 0, minor: 0x2e},
		{name: "nvme-large-minor", dev: 0x10010305, major: 0x103, minor: 0x10005},
		{name: "dm", dev: 0xfd02, major: 0xfd, minor: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := fileKey{dev: tt.dev}
			if k.major() != tt.major || k.minor() != tt.minor {
				t.Errorf("dev %#x: %#x:%#x, want %#x:%#x", tt.dev, k.major(), k.minor(), tt.major, tt.minor)
			}
		})
	}
}

func FuzzProcLocks(f *testing.F) {
	for _, seed := range []string{
		"1: FLOCK  ADVISORY  WRITE 1234 08:01:1317 0 EOF\n",    // a holder
		"1: -> FLOCK  ADVISORY  WRITE 1240 08:01:1317 0 EOF\n", // a waiter
		"3: OFDLCK ADVISORY  READ  -1 00:2e:4242 0 EOF\n",      // pid -1
		"2: POSIX ADVISORY WRITE 5 fd:02:99 0 EOF",             // no final newline
		"1: FLOCK\n",           // truncated
		"1: -> \n",             // waiter with nothing after
		"x: FLOCK a b 1 1:1:1", // odd index
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, e := range parseLocks(data) {
			if e.kind == "" {
				t.Fatalf("entry without kind: %+v", e)
			}
			if e.major > 0xffffffff || e.minor > 0xffffffff {
				t.Fatalf("device number out of range: %+v", e)
			}
		}
	})
}
