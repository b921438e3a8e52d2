package pidfile

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// DefaultPIDMax is the upper bound on pids used when
// /proc/sys/kernel/pid_max cannot be read: PID_MAX_LIMIT on 64-bit Linux,
// the largest value the kernel accepts for pid_max.
const DefaultPIDMax = 4194304

// PIDMax returns the kernel's pid_max, read once from
// /proc/sys/kernel/pid_max, or [DefaultPIDMax] when that cannot be read.
// It is safe for concurrent use.
func PIDMax() int { return pidMax() }

var pidMax = sync.OnceValue(func() int {
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return DefaultPIDMax
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || n < 2 || n > DefaultPIDMax {
		return DefaultPIDMax
	}
	return n
})

// trailing is the whitespace allowed after the digits: what echo, printf
// and editors leave behind. Nothing is allowed before them.
const trailing = " \t\r\n"

// Parse parses the content of a pid file strictly: decimal digits without
// sign or leading zero, optionally followed by spaces, tabs and newlines,
// with 1 < pid <= [PIDMax]. Pid 1 is refused because no daemon baton drives
// is init, and signalling it is never what the operator meant.
//
// Errors are [*Error] with an empty Path, wrapping [ErrEmpty] or
// [ErrMalformed], quoting (a bounded excerpt of) data in Found.
func Parse(data []byte) (int, error) { return parse(data, pidMax()) }

func parse(data []byte, max int) (int, error) {
	digits := bytes.TrimRight(data, trailing)
	malformed := func(format string, args ...any) error {
		return &Error{Found: excerpt(data), Err: fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)}
	}
	if len(digits) == 0 {
		return 0, &Error{Found: excerpt(data), Err: ErrEmpty}
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, malformed("not a decimal number")
		}
	}
	// More digits than any int can hold is out of range too; checking the
	// length first keeps Atoi's overflow error out of the message.
	if len(digits) > len(strconv.Itoa(max)) {
		return 0, malformed("pid out of range 2..%d", max)
	}
	if digits[0] == '0' && len(digits) > 1 {
		return 0, malformed("leading zero")
	}
	pid, err := strconv.Atoi(string(digits))
	if err != nil { // unreachable after the checks above; kept honest
		return 0, malformed("%v", err)
	}
	if pid <= 1 || pid > max {
		return 0, malformed("pid %d out of range 2..%d", pid, max)
	}
	return pid, nil
}
