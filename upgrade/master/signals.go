//go:build linux

package master

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// action is what the master does on a signal.
type action uint8

const (
	actNone     action = iota
	actUpgrade         // start a new master from the binary on disk
	actDrain           // stop all workers, keep listeners
	actReload          // re-read config, start a fresh generation
	actGraceful        // graceful shutdown
	actFast            // fast shutdown
	actReopen          // reopen the log file, pass on to workers
	actMore            // one worker more
	actLess            // one worker fewer
)

var actionNames = [...]string{"none", "upgrade", "drain", "reload", "graceful-stop", "fast-stop", "reopen-logs", "worker+1", "worker-1"}

func (a action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// signalTable is the master's whole signal protocol, with nginx's meanings so
// that the same scripts drive nginx and baton. No other place in the package
// names these signals.
var signalTable = map[syscall.Signal]action{
	syscall.SIGUSR2:  actUpgrade,
	syscall.SIGWINCH: actDrain,
	syscall.SIGHUP:   actReload,
	syscall.SIGQUIT:  actGraceful,
	syscall.SIGTERM:  actFast,
	syscall.SIGINT:   actFast,
	syscall.SIGUSR1:  actReopen,
	syscall.SIGTTIN:  actMore,
	syscall.SIGTTOU:  actLess,
	// Caught and dropped: with a handler (not SIG_IGN, which workers would
	// inherit across exec) a write to a closed stderr pipe fails with EPIPE
	// instead of killing the master (os/signal: "SIGPIPE").
	syscall.SIGPIPE: actNone,
}

// Signals the master sends, named once.
const (
	sigKill     = syscall.SIGKILL // a worker past its stop timeout
	sigFastStop = syscall.SIGTERM // workers on a fast shutdown
	sigReopen   = syscall.SIGUSR1 // passed on to workers
)

// handledSignals lists the table's signals for signal.Notify.
func handledSignals() []os.Signal {
	out := make([]os.Signal, 0, len(signalTable))
	for s := range signalTable {
		out = append(out, s)
	}
	return out
}

// signalNames maps the names --stop-signal accepts.
var signalNames = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "QUIT": syscall.SIGQUIT, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH, "KILL": syscall.SIGKILL,
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU,
}

// sigName names sig as the protocol does ("USR2").
func sigName(sig syscall.Signal) string {
	for name, s := range signalNames {
		if s == sig {
			return name
		}
	}
	return sig.String()
}

// parseSignal accepts "TERM", "SIGTERM" or "15".
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	if sig, ok := signalNames[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("%w: unknown signal %q", ErrConfig, s)
}
