//go:build linux

package master

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
	workers     int
	dir         string
	envFile     string
	envDrop     []string
	ready       readiness
	stopSignal  syscall.Signal
	stopTimeout time.Duration
	cred        *syscall.Credential
	userName    string
	logFile     string
	configFile  string
	command     []string
	backoffMin  time.Duration
	backoffMax  time.Duration
	crashLoop   int
}

// loadConfig merges opts with the config file and checks everything; it
// binds and starts nothing, so it also serves to vet a HUP or USR2.
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
	c := &config{
		pidfile:     abs(opts.PIDFile),
		socketMode:  opts.SocketMode,
		workers:     opts.Workers,
		dir:         abs(opts.Dir),
		envFile:     abs(opts.EnvFile),
		envDrop:     opts.EnvDrop,
		stopTimeout: opts.StopTimeout,
		logFile:     abs(opts.LogFile),
		configFile:  abs(opts.Config),
		command:     opts.Command,
		backoffMin:  opts.BackoffMin,
		backoffMax:  opts.BackoffMax,
		crashLoop:   opts.CrashLoop,
	}
	var errs []error
	if c.pidfile == "" {
		errs = append(errs, fmt.Errorf("%w: a pid file is required", ErrConfig))
	}
	if len(c.command) == 0 || c.command[0] == "" {
		errs = append(errs, fmt.Errorf("%w: a command to run is required", ErrConfig))
	}
	var err error
	if c.listens, err = parseListens(opts.Listen, cwd); err != nil {
		errs = append(errs, err)
	}
	if c.workers == 0 {
		c.workers = 1
	}
	if c.workers < 0 {
		errs = append(errs, fmt.Errorf("%w: workers %d: want at least 1", ErrConfig, c.workers))
	}
	if c.dir == "" {
		c.dir = cwd
	}
	if opts.Ready == "" {
		opts.Ready = "delay:1s"
	}
	if c.ready, err = parseReady(opts.Ready); err != nil {
		errs = append(errs, err)
	}
	if opts.StopSignal == "" {
		opts.StopSignal = "TERM"
	}
	if c.stopSignal, err = parseSignal(opts.StopSignal); err != nil {
		errs = append(errs, err)
	}
	if c.stopTimeout == 0 {
		c.stopTimeout = 10 * time.Second
	}
	if c.stopTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: stop timeout %s is negative", ErrConfig, c.stopTimeout))
	}
	if c.backoffMin <= 0 {
		c.backoffMin = 100 * time.Millisecond
	}
	if c.backoffMax <= 0 {
		c.backoffMax = 10 * time.Second
	}
	if c.backoffMax < c.backoffMin {
		c.backoffMax = c.backoffMin
	}
	if c.crashLoop <= 0 {
		c.crashLoop = 3
	}
	if c.socketMode&^os.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("%w: socket mode %o: only permission bits", ErrConfig, c.socketMode))
	}
	if c.cred, c.userName, err = credential(opts.User, opts.Group); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
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

// mergeOptions fills the fields of flags left at their zero value from file.
func mergeOptions(flags, file Options) Options {
	o := flags
	if len(o.Listen) == 0 {
		o.Listen = file.Listen
	}
	if o.SocketMode == 0 {
		o.SocketMode = file.SocketMode
	}
	if o.Workers == 0 {
		o.Workers = file.Workers
	}
	if o.Dir == "" {
		o.Dir = file.Dir
	}
	if o.EnvFile == "" {
		o.EnvFile = file.EnvFile
	}
	if len(o.EnvDrop) == 0 {
		o.EnvDrop = file.EnvDrop
	}
	if o.Ready == "" {
		o.Ready = file.Ready
	}
	if o.StopSignal == "" {
		o.StopSignal = file.StopSignal
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = file.StopTimeout
	}
	if o.User == "" {
		o.User = file.User
	}
	if o.Group == "" {
		o.Group = file.Group
	}
	if o.LogFile == "" {
		o.LogFile = file.LogFile
	}
	return o
}

// configKeys are the keys a config file may hold; repeatable ones append.
var configKeys = []string{"listen", "socket-mode", "workers", "dir", "envfile", "env-drop", "ready",
	"stop-signal", "stop-timeout", "user", "group", "log-file"}

// parseConfigFile parses "key = value" lines: '#' starts a comment line,
// blank lines are skipped, listen and env-drop may repeat, any other key
// appears at most once, and unknown keys are errors.
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
		if !slices.Contains(configKeys, k) {
			return bad(n, "unknown key %q", k)
		}
		if seen[k] && k != "listen" && k != "env-drop" {
			return bad(n, "key %q given twice", k)
		}
		seen[k] = true
		switch k {
		case "listen":
			o.Listen = append(o.Listen, v)
		case "env-drop":
			o.EnvDrop = append(o.EnvDrop, v)
		case "socket-mode":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 0o777 {
				return bad(n, "socket-mode %q: want octal permission bits such as 0660", v)
			}
			o.SocketMode = os.FileMode(m)
		case "workers":
			w, err := strconv.Atoi(v)
			if err != nil || w < 1 {
				return bad(n, "workers %q: want a number of at least 1", v)
			}
			o.Workers = w
		case "stop-timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad(n, "stop-timeout %q: want a positive duration such as 10s", v)
			}
			o.StopTimeout = d
		case "dir":
			o.Dir = v
		case "envfile":
			o.EnvFile = v
		case "ready":
			o.Ready = v
		case "stop-signal":
			o.StopSignal = v
		case "user":
			o.User = v
		case "group":
			o.Group = v
		case "log-file":
			o.LogFile = v
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
