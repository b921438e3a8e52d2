//go:build linux

package master

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       string // String() of the result, "" for an error
		wildcard   bool
	}{
		{name: "port", spec: "8080", want: ":8080", wildcard: true},
		{name: "colon-port", spec: ":8080", want: ":8080", wildcard: true},
		{name: "ipv4", spec: "127.0.0.1:8080", want: "127.0.0.1:8080"},
		{name: "ipv6", spec: "[::1]:8080", want: "[::1]:8080"},
		{name: "port-zero", spec: "127.0.0.1:0", want: "127.0.0.1:0"},
		{name: "unix", spec: "unix:/run/app.sock", want: "unix:/run/app.sock"},
		{name: "unix-relative", spec: "unix:app.sock", want: "unix:/srv/app.sock"},
		{name: "unix-abstract", spec: "unix:@app", want: "unix:@app"},
		{name: "named", spec: "web=127.0.0.1:80", want: "web=127.0.0.1:80"},
		{name: "named-unix", spec: "admin=unix:/run/a.sock", want: "admin=unix:/run/a.sock"},
		{name: "equals-in-unix-path", spec: "unix:/run/a=b.sock", want: "unix:/run/a=b.sock"},
		{name: "hostname", spec: "localhost:8080"},
		{name: "no-port", spec: "127.0.0.1"},
		{name: "port-too-big", spec: "65536"},
		{name: "negative-port", spec: ":-1"},
		{name: "ipv6-unbracketed", spec: "::1:8080"},
		{name: "ipv6-zone", spec: "[fe80::1%eth0]:80"},
		{name: "ipv4-in-brackets", spec: "[127.0.0.1]:80"},
		{name: "empty", spec: ""},
		{name: "empty-unix", spec: "unix:"},
		{name: "bad-name", spec: "we b=8080"},
		{name: "empty-name", spec: "=8080"},
		{name: "scheme", spec: "tcp://127.0.0.1:80"},
		{name: "unix-too-long", spec: "unix:/" + strings.Repeat("a", 120)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseListen(tc.spec, "/srv")
			if tc.want == "" {
				if !errors.Is(err, ErrBadListen) {
					t.Fatalf("parseListen(%q) = %v, %v; want an ErrBadListen", tc.spec, s, err)
				}
				if !strings.Contains(err.Error(), tc.spec) {
					t.Errorf("error %q does not quote the spec", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseListen(%q): %v", tc.spec, err)
			}
			if s.String() != tc.want || s.wildcard() != tc.wildcard {
				t.Errorf("parseListen(%q) = %q wildcard=%v, want %q wildcard=%v", tc.spec, s, s.wildcard(), tc.want, tc.wildcard)
			}
		})
	}
}

// FuzzParseListen: parsing never panics, and what it accepts formats to a
// spec that parses to the same value (a fixed point).
func FuzzParseListen(f *testing.F) {
	for _, seed := range []string{
		"8080", ":0", "127.0.0.1:8080", "[::1]:443", "unix:/run/a.sock", "unix:@x",
		"web=[::]:80", "a=b=c", "[::ffff:1.2.3.4]:1", // v4-in-v6 is refused
		"unix:rel/../x.sock", "1.2.3.4:99999", "=", ":", "[", "unix:/\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := parseListen(spec, "/cwd")
		if err != nil {
			if !errors.Is(err, ErrBadListen) {
				t.Fatalf("error %v is not ErrBadListen", err)
			}
			return
		}
		again, err := parseListen(s.String(), "/elsewhere")
		if err != nil || again != s {
			t.Fatalf("%q -> %q -> %v, %v", spec, s.String(), again, err)
		}
	})
}

func TestParseListensReportsAll(t *testing.T) {
	_, err := parseListens([]string{"127.0.0.1:80", "localhost:80", "unix:", "127.0.0.1:80"}, "/")
	if !errors.Is(err, ErrBadListen) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`"localhost:80"`, `"unix:"`, "listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
	if _, err := parseListens(nil, "/"); !errors.Is(err, ErrBadListen) {
		t.Errorf("no listener: err = %v", err)
	}
}

func TestSpecMatches(t *testing.T) {
	for _, tc := range []struct {
		name, spec, network, addr string
		want                      bool
	}{
		{name: "same", spec: "127.0.0.1:8080", network: "tcp", addr: "127.0.0.1:8080", want: true},
		{name: "other-port", spec: "127.0.0.1:8080", network: "tcp", addr: "127.0.0.1:8081"},
		{name: "port-zero-any-port", spec: "127.0.0.1:0", network: "tcp", addr: "127.0.0.1:40000", want: true},
		{name: "wildcard-v6", spec: "8080", network: "tcp6", addr: "[::]:8080", want: true},
		{name: "wildcard-v4", spec: ":8080", network: "tcp", addr: "0.0.0.0:8080", want: true},
		{name: "wildcard-not-loopback", spec: ":8080", network: "tcp", addr: "127.0.0.1:8080"},
		{name: "v6", spec: "[::1]:80", network: "tcp6", addr: "[::1]:80", want: true},
		{name: "unix", spec: "unix:/a.sock", network: "unix", addr: "/a.sock", want: true},
		{name: "unix-other", spec: "unix:/a.sock", network: "unix", addr: "/b.sock"},
		{name: "tcp-vs-unix", spec: "127.0.0.1:80", network: "unix", addr: "/a.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseListen(tc.spec, "/")
			if err != nil {
				t.Fatal(err)
			}
			if got := s.matches(tc.network, tc.addr); got != tc.want {
				t.Errorf("%s matches %s %s = %v, want %v", tc.spec, tc.network, tc.addr, got, tc.want)
			}
		})
	}
}

func TestStarterAddr(t *testing.T) {
	for _, tc := range []struct{ name, spec, network, addr, want string }{
		{name: "host", spec: "127.0.0.1:0", network: "tcp", addr: "127.0.0.1:4000", want: "127.0.0.1:4000"},
		{name: "wildcard", spec: "8080", network: "tcp6", addr: "[::]:8080", want: "8080"},
		{name: "v6", spec: "[::1]:80", network: "tcp6", addr: "[::1]:80", want: "[::1]:80"},
		{name: "unix", spec: "unix:/run/a.sock", network: "unix", addr: "/run/a.sock", want: "/run/a.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := parseListen(tc.spec, "/")
			l := &listener{spec: s, network: tc.network, addr: tc.addr}
			if got := l.starterAddr(); got != tc.want {
				t.Errorf("starterAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReconcile: inherited sockets are matched by the spec they were bound
// for, an added address is bound, a removed one is returned to be closed.
func TestReconcile(t *testing.T) {
	dir := t.TempDir()
	mk := func(spec string) *listener {
		s, err := parseListen(spec, dir)
		if err != nil {
			t.Fatal(err)
		}
		l, err := bind(s, 0o660)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.close(true) })
		return l
	}
	a, b := mk("127.0.0.1:0"), mk("unix:b.sock")
	if fi, err := os.Stat(filepath.Join(dir, "b.sock")); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket file: %v, mode %v; want 0660", err, fi.Mode())
	}
	have := []candidate{{l: a, spec: "127.0.0.1:0"}, {l: b, spec: "unix:" + filepath.Join(dir, "b.sock")}}
	specs, err := parseListens([]string{"127.0.0.1:0", "unix:c.sock"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	use, unused, err := reconcile(specs, have, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { use[1].close(true) })
	if use[0] != a || use[1] == b || use[1].addr != filepath.Join(dir, "c.sock") {
		t.Errorf("use = %v %v", use[0].addr, use[1].addr)
	}
	if !slices.Equal(unused, []*listener{b}) {
		t.Errorf("unused = %v, want b", unused)
	}
	// A bad bind leaves nothing behind.
	specs, _ = parseListens([]string{"unix:d.sock", "unix:/nonexistent-dir/e.sock"}, dir)
	if _, _, err := reconcile(specs, nil, 0); err == nil {
		t.Fatal("bind in a missing directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "d.sock")); !os.IsNotExist(err) {
		t.Errorf("d.sock left behind after a failed reconcile: %v", err)
	}
}

func TestBindRefusesLiveUnixSocket(t *testing.T) {
	dir := t.TempDir()
	s, _ := parseListen("unix:x.sock", dir)
	l, err := bind(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close(true)
	if _, err := bind(s, 0); err == nil || !strings.Contains(err.Error(), "another process accepts") {
		t.Fatalf("second bind: %v", err)
	}
	// A stale file (nobody accepting) is replaced.
	l.file.Close()
	l2, err := bind(s, 0)
	if err != nil {
		t.Fatalf("bind over a stale socket: %v", err)
	}
	l2.close(true)
	if _, err := os.Stat(filepath.Join(dir, "x.sock")); !os.IsNotExist(err) {
		t.Errorf("owned socket not unlinked: %v", err)
	}
}

func TestParseConfigFile(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       Options
		err        string
	}{
		{name: "full", data: "# app\nlisten = 127.0.0.1:80\nlisten = unix:/a.sock\nworkers = 3\n\nsocket-mode = 0660\n" +
			"dir = /srv/current\nenvfile=/etc/app.env\nenv-drop = A\nenv-drop = B\nready = notify\nstop-signal = QUIT\n" +
			"stop-timeout = 30s\nuser = nobody\ngroup = nogroup\nlog-file = /var/log/baton.log\n" +
			"log-format = json\nworker-log-file = /var/log/app.log\n",
			want: Options{Listen: []string{"127.0.0.1:80", "unix:/a.sock"}, Workers: 3, SocketMode: 0o660, Dir: "/srv/current",
				EnvFile: "/etc/app.env", EnvDrop: []string{"A", "B"}, Ready: "notify", StopSignal: "QUIT", StopTimeout: 30 * time.Second,
				User: "nobody", Group: "nogroup", LogFile: "/var/log/baton.log", LogFormat: "json",
				WorkerLogFile: "/var/log/app.log"}},
		{name: "empty", data: "", want: Options{}},
		{name: "unknown-key", data: "pidfile = /x", err: `unknown key "pidfile"`},
		{name: "twice", data: "workers = 1\nworkers = 2", err: "given twice"},
		{name: "no-equals", data: "workers 2", err: "want key = value"},
		{name: "bad-workers", data: "workers = zero", err: "workers"},
		{name: "bad-mode", data: "socket-mode = 999", err: "socket-mode"},
		{name: "bad-timeout", data: "stop-timeout = soon", err: "stop-timeout"},
		{name: "bad-log-format", data: "log-format = xml", err: "log-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfigFile("app.conf", []byte(tc.data))
			if tc.err != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "app.conf:") {
					t.Fatalf("err = %v, want ErrConfig mentioning %q and the file:line", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalOptions(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func equalOptions(a, b Options) bool {
	return slices.Equal(a.Listen, b.Listen) && slices.Equal(a.EnvDrop, b.EnvDrop) && a.Workers == b.Workers &&
		a.SocketMode == b.SocketMode && a.DeferAccept == b.DeferAccept && a.Dir == b.Dir && a.EnvFile == b.EnvFile && a.Ready == b.Ready &&
		a.StopSignal == b.StopSignal && a.StopTimeout == b.StopTimeout && a.User == b.User && a.Group == b.Group &&
		a.LogFile == b.LogFile && a.LogFormat == b.LogFormat && a.WorkerLogFile == b.WorkerLogFile
}

// FuzzParseConfigFile: never panics; errors are ErrConfig; accepted files
// only set known keys.
func FuzzParseConfigFile(f *testing.F) {
	f.Add("listen = 8080\nworkers = 2\n")
	f.Add("# comment\n\nready = delay:1s")
	f.Add("workers = -1")
	f.Add("=\n")
	f.Fuzz(func(t *testing.T, data string) {
		o, err := parseConfigFile("f", []byte(data))
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		if o.Workers < 0 || o.StopTimeout < 0 || o.SocketMode > 0o777 {
			t.Fatalf("accepted out-of-range values: %+v", o)
		}
	})
}

func TestLoadConfigMerge(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "baton.conf")
	if err := os.WriteFile(conf, []byte("listen = 127.0.0.1:9000\nworkers = 4\nready = notify\ndir = rel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(Options{PIDFile: "app.pid", Config: "baton.conf", Workers: 2, Command: []string{"x"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.workers != 2 || !c.ready.notify || len(c.listens) != 1 || c.listens[0].String() != "127.0.0.1:9000" {
		t.Errorf("flags must win, the file fills the rest: %+v", c)
	}
	if c.pidfile != filepath.Join(dir, "app.pid") || c.dir != filepath.Join(dir, "rel") {
		t.Errorf("relative paths resolve against the start directory: pidfile %q dir %q", c.pidfile, c.dir)
	}
	if c.stopSignal != syscall.SIGTERM || c.stopTimeout != 10*time.Second || c.ready.String() != "notify" {
		t.Errorf("defaults: %v %v", c.stopSignal, c.stopTimeout)
	}
	_, err = loadConfig(Options{Listen: []string{"nope"}, Ready: "sometimes", StopSignal: "FOO"}, dir)
	for _, want := range []string{"pid file is required", "command", `"nope"`, "sometimes", "FOO"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	got, err := parseEnvFile("e", []byte("# c\nA=1\nexport B = two words \nC=\"quoted\"\nD='x'\nE=\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "C=quoted", "D=x", "E="}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"NOEQUALS", "1A=x", "A B=x"} {
		if _, err := parseEnvFile("e", []byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEnvPolicy(t *testing.T) {
	first := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/systemd/notify", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=a:b",
		"BATON_PIDFILE=/run/a.pid", "SERVER_STARTER_PORT=80=3", "SECRET=x", "HOME=/root", "WATCHDOG_USEC=2000000", "WATCHDOG_PID=1"}
	rec, err := masterEnv(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range rec {
		if strings.HasPrefix(kv, "LISTEN_") {
			t.Errorf("recorded master environment keeps %s", kv)
		}
	}
	if !slices.Contains(rec, "NOTIFY_SOCKET=/run/systemd/notify") || !slices.Contains(rec, "BATON_PIDFILE=/run/a.pid") {
		t.Errorf("the next master needs NOTIFY_SOCKET and its BATON_ flags: %q", rec)
	}
	// A re-executed master takes the record, not its own environment.
	again, err := masterEnv(append([]string{"GROWN=1"}, EnvMasterEnv+`=["A=1"]`))
	if err != nil || !slices.Equal(again, []string{"A=1"}) {
		t.Errorf("masterEnv from record = %q, %v", again, err)
	}
	w := workerBaseEnv(rec, []string{"SECRET"})
	if !slices.Equal(w, []string{"PATH=/bin", "HOME=/root"}) {
		t.Errorf("worker base environment = %q", w)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "SIGQUIT": syscall.SIGQUIT, "int": syscall.SIGINT, "9": syscall.SIGKILL} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "NOPE", "0", "99"} {
		if _, err := parseSignal(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("parseSignal(%q) accepted", bad)
		}
	}
}

// TestSignalTable: every nginx signal has its action, and nothing else is caught.
func TestSignalTable(t *testing.T) {
	want := map[syscall.Signal]action{
		syscall.SIGUSR2: actUpgrade, syscall.SIGWINCH: actDrain, syscall.SIGHUP: actReload, syscall.SIGQUIT: actGraceful,
		syscall.SIGTERM: actFast, syscall.SIGINT: actFast, syscall.SIGUSR1: actReopen, syscall.SIGTTIN: actMore, syscall.SIGTTOU: actLess,
		syscall.SIGPIPE: actNone,
	}
	if len(signalTable) != len(want) {
		t.Errorf("table has %d signals, want %d", len(signalTable), len(want))
	}
	for s, a := range want {
		if signalTable[s] != a {
			t.Errorf("%v -> %v, want %v", s, signalTable[s], a)
		}
	}
}

func TestBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, time.Second
	for _, tc := range []struct {
		name  string
		fails int
		want  time.Duration
	}{
		{name: "exited-after-ready", fails: 0, want: lo},
		{name: "first-failure", fails: 1, want: lo},
		{name: "second", fails: 2, want: 2 * lo},
		{name: "fourth", fails: 4, want: 8 * lo},
		{name: "capped", fails: 5, want: hi},
		{name: "far-past-cap", fails: 1000, want: hi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := backoff(tc.fails, lo, hi); got != tc.want {
				t.Errorf("backoff(%d) = %v, want %v", tc.fails, got, tc.want)
			}
		})
	}
}

// TestWorkerCap: TTIN stops at MaxWorkers, as --workers does.
func TestWorkerCap(t *testing.T) {
	m := &master{want: MaxWorkers, log: slog.New(slog.DiscardHandler)}
	m.adjustWorkers(+1) // no current generation: only the count changes
	if m.want != MaxWorkers {
		t.Errorf("TTIN at the cap: %d workers wanted, want %d", m.want, MaxWorkers)
	}
	if err := checkWorkers(MaxWorkers + 1); !errors.Is(err, ErrConfig) {
		t.Errorf("workers %d: %v, want ErrConfig", MaxWorkers+1, err)
	}
}
