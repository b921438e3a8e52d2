package master

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"
)

// ErrConfig is wrapped by every error about the options or the config file:
// nothing was bound or started.
var ErrConfig = errors.New("master: bad configuration")

// ErrBadListen is wrapped by every error about a --listen spec.
var ErrBadListen = errors.New("master: bad listen address")

// Options configures Run. Fields given here win over the config file; a
// field left at its zero value takes the config file's value, else the
// default stated on it.
type Options struct {
	// PIDFile is the pid file, flock-locked for the master's life. Required.
	PIDFile string
	// Listen lists "[NAME=]ADDR" specs: "8080", ":8080", "127.0.0.1:8080",
	// "[::1]:8080", "unix:/run/app.sock". At least one is required (here or
	// in the config file).
	Listen []string
	// SocketMode is the mode of unix socket files baton creates; zero leaves
	// the mode the umask gives.
	SocketMode os.FileMode
	// Workers is how many copies of Command run; zero means 1, at most
	// MaxWorkers. TTIN and TTOU change the count (TTIN not past MaxWorkers)
	// until the next HUP, which reads it again.
	Workers int
	// Dir is where workers start, chdir'd by this path at every start (a
	// symlink is followed anew each time); empty means the directory baton
	// was started in.
	Dir string
	// EnvFile holds KEY=VALUE lines added to every worker's environment,
	// re-read at every start; empty means none.
	EnvFile string
	// EnvDrop names more variables that workers must not inherit.
	EnvDrop []string
	// Ready is "notify" (a worker is ready when it sends READY=1 to the
	// NOTIFY_SOCKET baton gives it) or "delay:DURATION" (alive that long);
	// empty means "delay:1s".
	Ready string
	// BootNice, when positive, is added to the master's nice value for
	// every worker until it is ready (at most 19): a generation that boots
	// while another serves (an upgrade, a reload, a restart) gets the CPU
	// only after the serving workers. Putting a ready worker back needs
	// CAP_SYS_NICE (root) or RLIMIT_NICE; without it the option is refused.
	BootNice int
	// StopSignal is sent to stop a worker gracefully ("TERM", "SIGQUIT",
	// "15"); empty means TERM.
	StopSignal string
	// DeferAccept, when positive, sets TCP_DEFER_ACCEPT on the TCP
	// listeners baton binds: the kernel hands a connection to accept(2) only
	// once its first data has arrived (or this long has passed), so a worker
	// told to stop never holds an accepted connection with no request yet,
	// which some servers (puma) close unanswered when they stop. For
	// protocols where the client speaks first (HTTP); sockets systemd
	// passes are left as the socket unit set them (DeferAcceptSec=).
	DeferAccept time.Duration
	// StopTimeout is how long a stopping worker has before KILL; zero means 10s.
	StopTimeout time.Duration
	// User and Group run the workers as another user; empty means the master's.
	User, Group string
	// LogFile is appended to instead of stderr and reopened on USR1; empty
	// means stderr (or Logger).
	LogFile string
	// LogFormat is "text" (log/slog's TextHandler: key=value) or "json"
	// (its JSONHandler: one object per line); empty means text. Unused
	// with Logger.
	LogFormat string
	// WorkerLogFile receives the workers' stdout and stderr: each worker
	// writes to a pipe of its own, which the master copies to this file
	// line by line (a line is never split between workers), appending, and
	// reopens on USR1 like LogFile, so that logrotate can move it. It may
	// be LogFile itself. Empty means the workers write straight to the
	// master's stdout and stderr.
	//
	// LogFile, LogFormat and WorkerLogFile are read at start: a HUP keeps
	// them; the next master (USR2) reads them anew.
	WorkerLogFile string
	// Config is a file of "key = value" lines with the same keys as the
	// flags (listen, socket-mode, workers, dir, envfile, env-drop, ready,
	// stop-signal, stop-timeout, user, group, log-file, log-format,
	// worker-log-file), read at start, on HUP and by the new master on
	// USR2; empty means none.
	Config string
	// Command is the worker program and its arguments. Required.
	Command []string

	// Logger receives the master's log; nil means a text logger on stderr
	// or LogFile.
	Logger *slog.Logger
	// Binary is the program started as the new master on USR2, found again
	// by this path every time; empty means os.Args[0] resolved at start
	// against the working directory or PATH (never /proc/self/exe, so that
	// a file replaced at the same path is used).
	Binary string
	// Args are the new master's arguments after argv[0]; nil means os.Args[1:].
	Args []string
	// Env is the environment baton was started with; nil means os.Environ().
	Env []string
	// BackoffMin and BackoffMax bound the delay before a failed worker is
	// started again, doubling per consecutive failure; zero means 100ms and 10s.
	BackoffMin, BackoffMax time.Duration
	// CrashLoop is how many consecutive failed starts of one worker flag a
	// crash loop in the status; zero means 3.
	CrashLoop int
}

// Run runs the master until it is stopped by QUIT, TERM or INT, or ctx is
// done (a graceful stop). It returns an error wrapping ErrConfig or
// ErrBadListen for bad options (nothing bound), a *pidfile.Error wrapping
// pidfile.ErrRunning when another master holds the pid file, or an error of
// the start-up step that failed. Run changes the process's working directory
// to "/" and handles the signals of its table until it returns; call it once
// per process.
func Run(ctx context.Context, opts Options) error {
	return run(ctx, opts)
}
