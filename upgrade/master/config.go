//go:build linux

package master

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Environment variables that set baton run's options, one per row of
// RunOptions: BATON_ and the option's name in upper case, '-' as '_'.
const (
	EnvPIDFile     = "BATON_PIDFILE"
	EnvListen      = "BATON_LISTEN"
	EnvSocketMode  = "BATON_SOCKET_MODE"
	EnvDeferAccept = "BATON_DEFER_ACCEPT"
	EnvWorkers     = "BATON_WORKERS"
	EnvDir         = "BATON_DIR"
	EnvEnvFile     = "BATON_ENVFILE"
	EnvEnvDrop     = "BATON_ENV_DROP"
	EnvReady       = "BATON_READY"
	EnvBootNice    = "BATON_BOOT_NICE"
	EnvStopSignal  = "BATON_STOP_SIGNAL"
	EnvStopTimeout = "BATON_STOP_TIMEOUT"
	EnvUser        = "BATON_USER"
	EnvGroup       = "BATON_GROUP"
	EnvLogFile     = "BATON_LOG_FILE"
	EnvLogFormat   = "BATON_LOG_FORMAT"
	EnvWorkerLog   = "BATON_WORKER_LOG_FILE"
	EnvConfig      = "BATON_CONFIG"
)

// Defaults of what neither a flag, its variable, the config file nor the
// Options field (at its zero value) gives.
const (
	DefaultWorkers     = 1
	DefaultReady       = "delay:1s"
	DefaultStopSignal  = "TERM"
	DefaultStopTimeout = 10 * time.Second
	DefaultBackoffMin  = 100 * time.Millisecond
	DefaultBackoffMax  = 10 * time.Second
	DefaultCrashLoop   = 3
	DefaultLogFormat   = "text"
)

// RunOption is one row of the table of baton run's options, RunOptions.
// A new option is a new row: cmd/baton makes its flag from Name, Env, Usage,
// Default, List and Required and stores what the flag says with Set; a config
// file takes Name as a key unless FlagOnly, and parses the value with the
// same Set; mergeOptions lets a flag that was given win over the file; and
// loadConfig fills in the default and checks the value, wherever it came from.
type RunOption struct {
	Name     string // flag name and config-file key
	Env      string // environment variable, one of the Env* constants
	Usage    string // one line of --help; a `WORD` in backquotes names the value
	List     bool   // repeatable: each flag and each file line adds one value
	Required bool   // the flag must be given
	FlagOnly bool   // not a config-file key
	about    string // the default for --help where it is no constant
	field    field  // where the value lives in Options, its default and its check
}

// Set parses and checks one value given for the option (a flag, a file
// line) and stores it in o; a List appends it. The error says what the value
// should be; the caller names the option and the value.
func (r RunOption) Set(o *Options, v string) error { return r.field.set(o, v) }

// Default is the default as --help shows it, "" for none.
func (r RunOption) Default() string { return cmp.Or(r.field.def(), r.about) }

// RunOptions returns the table of baton run's options, in --help's order.
func RunOptions() []RunOption { return slices.Clone(runOptions) }

var runOptions = []RunOption{
	{Name: "pidfile", Env: EnvPIDFile, Usage: "pid file, locked while the master runs", Required: true, FlagOnly: true,
		field: text(func(o *Options) *string { return &o.PIDFile })},
	{Name: "listen", Env: EnvListen, Usage: "`[NAME=]ADDR` to listen on (repeatable)", List: true,
		field: list(func(o *Options) *[]string { return &o.Listen })},
	{Name: "socket-mode", Env: EnvSocketMode, Usage: "octal mode of unix socket files, e.g. 0660", about: "umask",
		field: scalar[os.FileMode]{ptr: func(o *Options) *os.FileMode { return &o.SocketMode }, parse: parseMode,
			ok: func(m os.FileMode) bool { return m&^os.ModePerm == 0 }, want: "octal permission bits such as 0660"}},
	{Name: "defer-accept", Env: EnvDeferAccept, Usage: "TCP_DEFER_ACCEPT for the TCP listeners baton binds: accept a connection once its request has arrived (HTTP)", about: "off",
		field: scalar[time.Duration]{ptr: func(o *Options) *time.Duration { return &o.DeferAccept }, parse: time.ParseDuration,
			ok: func(d time.Duration) bool { return d == 0 || d >= time.Second }, want: "a duration of at least 1s such as 5s"}},
	{Name: "workers", Env: EnvWorkers, Usage: "number of workers",
		field: scalar[int]{ptr: func(o *Options) *int { return &o.Workers }, parse: strconv.Atoi, dflt: DefaultWorkers,
			ok: func(n int) bool { return n >= 1 }, want: "a number of at least 1"}},
	{Name: "dir", Env: EnvDir, Usage: "directory workers start in, re-resolved at every start", about: "current directory",
		field: text(func(o *Options) *string { return &o.Dir })},
	{Name: "envfile", Env: EnvEnvFile, Usage: "KEY=VALUE file added to workers' environment, re-read at every start",
		field: text(func(o *Options) *string { return &o.EnvFile })},
	{Name: "env-drop", Env: EnvEnvDrop, Usage: "variable workers must not inherit (repeatable)", List: true,
		field: list(func(o *Options) *[]string { return &o.EnvDrop })},
	{Name: "ready", Env: EnvReady, Usage: "readiness: notify or delay:DURATION",
		field: scalar[string]{ptr: func(o *Options) *string { return &o.Ready }, parse: plain, dflt: DefaultReady,
			ok: func(s string) bool { _, err := parseReady(s); return err == nil }, want: "notify or delay:DURATION"}},
	{Name: "boot-nice", Env: EnvBootNice, Usage: "nice value added to a worker's until it is ready: the serving workers keep the CPU while new ones boot", about: "off",
		field: scalar[int]{ptr: func(o *Options) *int { return &o.BootNice }, parse: strconv.Atoi,
			ok: func(n int) bool { return n >= 0 && n <= maxNice }, want: "a number from 0 to 19"}},
	{Name: "stop-signal", Env: EnvStopSignal, Usage: "signal that stops a worker gracefully",
		field: scalar[string]{ptr: func(o *Options) *string { return &o.StopSignal }, parse: plain, dflt: DefaultStopSignal,
			ok: func(s string) bool { _, err := parseSignal(s); return err == nil }, want: "a signal such as TERM, SIGQUIT or 15"}},
	{Name: "stop-timeout", Env: EnvStopTimeout, Usage: "time before a stopping worker is killed",
		field: scalar[time.Duration]{ptr: func(o *Options) *time.Duration { return &o.StopTimeout }, parse: time.ParseDuration,
			dflt: DefaultStopTimeout, ok: func(d time.Duration) bool { return d > 0 }, want: "a positive duration such as 10s"}},
	{Name: "user", Env: EnvUser, Usage: "run workers as this user",
		field: text(func(o *Options) *string { return &o.User })},
	{Name: "group", Env: EnvGroup, Usage: "run workers with this group",
		field: text(func(o *Options) *string { return &o.Group })},
	{Name: "log-file", Env: EnvLogFile, Usage: "log here instead of stderr; reopened on USR1",
		field: text(func(o *Options) *string { return &o.LogFile })},
	{Name: "log-format", Env: EnvLogFormat, Usage: "the master's log lines: text or json (log/slog)",
		field: scalar[string]{ptr: func(o *Options) *string { return &o.LogFormat }, parse: plain, dflt: DefaultLogFormat,
			ok: func(s string) bool { return s == "text" || s == "json" }, want: "text or json"}},
	{Name: "worker-log-file", Env: EnvWorkerLog, Usage: "append workers' stdout and stderr here, line by line; reopened on USR1",
		about: "the master's stdout and stderr",
		field: text(func(o *Options) *string { return &o.WorkerLogFile })},
	{Name: "config", Env: EnvConfig, Usage: "file of key = value lines with the flags' names, re-read on HUP and USR2", FlagOnly: true,
		field: text(func(o *Options) *string { return &o.Config })},
}

// field is where a RunOption's value lives in Options. The zero value of
// the field means "not given".
type field interface {
	set(o *Options, v string) error // parse and check v, store it (append to a list)
	merge(dst, src *Options)        // src's value into dst if dst has none
	fill(o *Options)                // the default into o if o has no value
	check(o *Options) error         // the value o holds, if any, is valid
	def() string                    // the default for --help, "" for none
}

// scalar is a field of one value of type T: parse reads it, ok (nil: any
// value) tells a valid one, want says what ok accepts, dflt replaces the zero value.
type scalar[T comparable] struct {
	ptr   func(*Options) *T
	parse func(string) (T, error)
	ok    func(T) bool
	want  string
	dflt  T
}

func (s scalar[T]) set(o *Options, v string) error {
	x, err := s.parse(v)
	if err != nil || (s.ok != nil && !s.ok(x)) {
		return fmt.Errorf("want %s", s.want)
	}
	*s.ptr(o) = x
	return nil
}

func (s scalar[T]) merge(dst, src *Options) {
	var zero T
	if *s.ptr(dst) == zero {
		*s.ptr(dst) = *s.ptr(src)
	}
}

func (s scalar[T]) fill(o *Options) {
	var zero T
	if *s.ptr(o) == zero {
		*s.ptr(o) = s.dflt
	}
}

func (s scalar[T]) check(o *Options) error {
	if v := *s.ptr(o); s.ok != nil && !s.ok(v) {
		return fmt.Errorf("%s: want %s", show(v), s.want)
	}
	return nil
}

func (s scalar[T]) def() string {
	var zero T
	if s.dflt == zero {
		return ""
	}
	return fmt.Sprint(s.dflt)
}

// show formats a value for an error: strings quoted, modes in octal.
func show(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case os.FileMode:
		return fmt.Sprintf("%#o", uint32(v))
	}
	return fmt.Sprint(v)
}

// text is a string field that takes any value and has no default.
func text(ptr func(*Options) *string) field { return scalar[string]{ptr: ptr, parse: plain} }

func plain(s string) (string, error) { return s, nil }

func parseMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	return os.FileMode(m), err
}

// list is a repeatable string field.
type list func(*Options) *[]string

func (l list) set(o *Options, v string) error { *l(o) = append(*l(o), v); return nil }

func (l list) merge(dst, src *Options) {
	if len(*l(dst)) == 0 {
		*l(dst) = *l(src)
	}
}

func (list) fill(*Options)        {}
func (list) check(*Options) error { return nil }
func (list) def() string          { return "" }

// readiness is a parsed Options.Ready.
type readiness struct {
	notify bool
	delay  time.Duration
}

func (r readiness) String() string {
	if r.notify {
		return "notify"
	}
	return "delay:" + r.delay.String()
}

func parseReady(s string) (readiness, error) {
	if s == "notify" {
		return readiness{notify: true}, nil
	}
	if d, ok := strings.CutPrefix(s, "delay:"); ok {
		dur, err := time.ParseDuration(d)
		if err == nil && dur >= 0 {
			return readiness{delay: dur}, nil
		}
	}
	return readiness{}, fmt.Errorf("%w: ready %q: want notify or delay:DURATION", ErrConfig, s)
}

// config is Options merged with the config file, checked, with every path
// made absolute against the directory baton was first started in.
type config struct {
	pidfile     string
	listens     []listenSpec
	socketMode  os.FileMode
	deferAccept time.Duration
	workers     int
	dir         string
	envFile     string
	envDrop     []string
	ready       readiness
	bootNice    int
	stopSignal  syscall.Signal
	stopTimeout time.Duration
	cred        *syscall.Credential
	userName    string
	logFile     string
	logFormat   string
	workerLog   string
	configFile  string
	command     []string
	backoffMin  time.Duration
	backoffMax  time.Duration
	crashLoop   int
}

// loadConfig merges opts with the config file, fills in the defaults and
// checks everything; it binds and starts nothing, so it also serves to vet a
// HUP or USR2. Every problem is reported, in one error.
func loadConfig(opts Options, cwd string) (*config, error) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cwd, p)
	}
	if opts.Config != "" {
		data, err := os.ReadFile(abs(opts.Config))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		file, err := parseConfigFile(abs(opts.Config), data)
		if err != nil {
			return nil, err
		}
		opts = mergeOptions(opts, file)
	}
	var errs []error
	for _, r := range runOptions {
		r.field.fill(&opts)
		if err := r.field.check(&opts); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s %w", ErrConfig, r.Name, err))
		}
	}
	if opts.PIDFile == "" {
		errs = append(errs, fmt.Errorf("%w: a pid file is required", ErrConfig))
	}
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		errs = append(errs, fmt.Errorf("%w: a command to run is required", ErrConfig))
	}
	listens, err := parseListens(opts.Listen, cwd)
	errs = append(errs, err)
	cred, userName, err := credential(opts.User, opts.Group)
	errs = append(errs, err)
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	ready, _ := parseReady(opts.Ready)            // checked by its row
	stopSignal, _ := parseSignal(opts.StopSignal) // checked by its row
	c := &config{
		pidfile:     abs(opts.PIDFile),
		listens:     listens,
		socketMode:  opts.SocketMode,
		deferAccept: opts.DeferAccept,
		workers:     opts.Workers,
		dir:         abs(opts.Dir),
		envFile:     abs(opts.EnvFile),
		envDrop:     opts.EnvDrop,
		ready:       ready,
		bootNice:    opts.BootNice,
		stopSignal:  stopSignal,
		stopTimeout: opts.StopTimeout,
		cred:        cred,
		userName:    userName,
		logFile:     abs(opts.LogFile),
		logFormat:   opts.LogFormat,
		workerLog:   abs(opts.WorkerLogFile),
		configFile:  abs(opts.Config),
		command:     opts.Command,
		backoffMin:  cmp.Or(max(opts.BackoffMin, 0), DefaultBackoffMin),
		backoffMax:  cmp.Or(max(opts.BackoffMax, 0), DefaultBackoffMax),
		crashLoop:   cmp.Or(max(opts.CrashLoop, 0), DefaultCrashLoop),
	}
	if c.dir == "" {
		c.dir = cwd
	}
	c.backoffMax = max(c.backoffMax, c.backoffMin)
	return c, nil
}

// credential looks up --user and --group; a user without a group runs with
// the user's primary group and supplementary groups.
func credential(userName, groupName string) (*syscall.Credential, string, error) {
	if userName == "" && groupName == "" {
		return nil, "", nil
	}
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), NoSetGroups: true}
	if userName != "" {
		u, err := lookupUser(userName)
		if err != nil {
			return nil, "", err
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred.Uid, cred.Gid, cred.NoSetGroups = uint32(uid), uint32(gid), false
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					cred.Groups = append(cred.Groups, uint32(g))
				}
			}
		}
	}
	if groupName != "" {
		g, err := lookupGroup(groupName)
		if err != nil {
			return nil, "", err
		}
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		cred.Gid = uint32(gid)
	}
	return cred, userName, nil
}

// mergeOptions fills the options of flags left at their zero value from
// file: a flag given wins over the file, row by row of the table.
func mergeOptions(flags, file Options) Options {
	o := flags
	for _, r := range runOptions {
		if !r.FlagOnly {
			r.field.merge(&o, &file)
		}
	}
	return o
}

// parseConfigFile parses "key = value" lines: '#' starts a comment line,
// blank lines are skipped, the keys are the names of the rows of the table
// that are not FlagOnly, a List key may repeat, any other key appears at most
// once, and unknown keys are errors. Each value is parsed and checked by its
// row, as a flag's is.
func parseConfigFile(name string, data []byte) (Options, error) {
	var o Options
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	bad := func(n int, format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: %s:%d: %s", ErrConfig, name, n, fmt.Sprintf(format, args...))
	}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return bad(n, "want key = value")
		}
		i := slices.IndexFunc(runOptions, func(r RunOption) bool { return r.Name == k && !r.FlagOnly })
		if i < 0 {
			return bad(n, "unknown key %q", k)
		}
		if seen[k] && !runOptions[i].List {
			return bad(n, "key %q given twice", k)
		}
		seen[k] = true
		if err := runOptions[i].Set(&o, v); err != nil {
			return bad(n, "%s %q: %v", k, v, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Options{}, fmt.Errorf("%w: %s: %w", ErrConfig, name, err)
	}
	return o, nil
}

// errorList is several errors on one line, for a CLI that prints one line;
// errors.Is and errors.As see each of them.
type errorList []error

func (l errorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (l errorList) Unwrap() []error { return l }

// joinErrors flattens errs into one error, nil when there is none.
func joinErrors(errs []error) error {
	var flat errorList
	for _, e := range errs {
		if l, ok := e.(errorList); ok {
			flat = append(flat, l...)
		} else if e != nil {
			flat = append(flat, e)
		}
	}
	switch len(flat) {
	case 0:
		return nil
	case 1:
		return flat[0]
	}
	return flat
}
