//go:build linux

package master

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunOptionsTable pins what users and scripts rely on: the names, the
// variables (BATON_ and the name in upper case), the config-file keys and
// the defaults --help shows.
func TestRunOptionsTable(t *testing.T) {
	var names, keys []string
	defaults := map[string]string{}
	for _, r := range RunOptions() {
		names = append(names, r.Name)
		if !r.FlagOnly {
			keys = append(keys, r.Name)
		}
		if want := "BATON_" + strings.ToUpper(strings.ReplaceAll(r.Name, "-", "_")); r.Env != want {
			t.Errorf("--%s: variable %s, want %s", r.Name, r.Env, want)
		}
		if r.Usage == "" || r.field == nil {
			t.Errorf("--%s: no usage or no field", r.Name)
		}
		if d := r.Default(); d != "" {
			defaults[r.Name] = d
		}
	}
	wantNames := []string{"pidfile", "listen", "socket-mode", "defer-accept", "workers", "dir", "envfile", "env-drop", "ready",
		"boot-nice", "stop-signal", "stop-timeout", "user", "group", "log-file", "log-format", "worker-log-file", "config"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("options %q, want %q", names, wantNames)
	}
	wantKeys := []string{"listen", "socket-mode", "defer-accept", "workers", "dir", "envfile", "env-drop", "ready",
		"boot-nice", "stop-signal", "stop-timeout", "user", "group", "log-file", "log-format", "worker-log-file"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("config keys %q, want %q", keys, wantKeys)
	}
	wantDefaults := map[string]string{"socket-mode": "umask", "defer-accept": "off", "workers": "1", "dir": "current directory",
		"ready": "delay:1s", "boot-nice": "off", "stop-signal": "TERM", "stop-timeout": "10s", "log-format": "text",
		"worker-log-file": "the master's stdout and stderr"}
	if len(defaults) != len(wantDefaults) {
		t.Errorf("defaults %q, want %q", defaults, wantDefaults)
	}
	for k, v := range wantDefaults {
		if defaults[k] != v {
			t.Errorf("--%s default %q, want %q", k, defaults[k], v)
		}
	}
}

// TestRunOptionSet: a flag's value and a config-file line go through the
// same row, so they are accepted and refused alike.
func TestRunOptionSet(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{name: "workers", value: "2", ok: true},
		{name: "workers", value: "0"},
		{name: "workers", value: "-1"},
		{name: "socket-mode", value: "0660", ok: true},
		{name: "socket-mode", value: "1777"},
		{name: "socket-mode", value: "8"},
		{name: "defer-accept", value: "30s", ok: true},
		{name: "defer-accept", value: "0s", ok: true},
		{name: "defer-accept", value: "500ms"},
		{name: "defer-accept", value: "-5s"},
		{name: "stop-timeout", value: "3s", ok: true},
		{name: "stop-timeout", value: "0s"},
		{name: "boot-nice", value: "10", ok: true},
		{name: "boot-nice", value: "19", ok: true},
		{name: "boot-nice", value: "20"},
		{name: "boot-nice", value: "-5"},
		{name: "boot-nice", value: "high"},
		{name: "ready", value: "delay:2s", ok: true},
		{name: "ready", value: "notify", ok: true},
		{name: "ready", value: "later"},
		{name: "stop-signal", value: "SIGQUIT", ok: true},
		{name: "stop-signal", value: "NOPE"},
		{name: "dir", value: "srv", ok: true},
		{name: "listen", value: "8080", ok: true},
		{name: "log-format", value: "json", ok: true},
		{name: "log-format", value: "text", ok: true},
		{name: "log-format", value: "JSON"},
		{name: "log-format", value: "logfmt"},
		{name: "worker-log-file", value: "workers.log", ok: true},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			i := slices.IndexFunc(runOptions, func(r RunOption) bool { return r.Name == tc.name })
			var flag Options
			flagErr := runOptions[i].Set(&flag, tc.value)
			file, fileErr := parseConfigFile("f", []byte(tc.name+" = "+tc.value))
			if (flagErr == nil) != tc.ok || (fileErr == nil) != tc.ok {
				t.Fatalf("Set: %v; file: %v; want ok=%v", flagErr, fileErr, tc.ok)
			}
			if tc.ok && !equalOptions(flag, file) {
				t.Errorf("flag gives %+v, file gives %+v", flag, file)
			}
			if !tc.ok && !strings.Contains(fileErr.Error(), tc.name+` "`+tc.value+`": want `) {
				t.Errorf("file error %q does not say what is wanted", fileErr)
			}
		})
	}
}

// TestMergeOptions: every option the flags give wins; every other one comes
// from the file; the flag-only ones never come from the file.
func TestMergeOptions(t *testing.T) {
	file := Options{Listen: []string{"f"}, SocketMode: 0o600, DeferAccept: 9 * time.Second, Workers: 4, Dir: "f", EnvFile: "f", EnvDrop: []string{"F"},
		Ready: "notify", StopSignal: "QUIT", StopTimeout: time.Second, User: "f", Group: "f", LogFile: "f",
		LogFormat: "json", WorkerLogFile: "f", PIDFile: "file.pid", Config: "file.conf"}
	if got := mergeOptions(Options{PIDFile: "a.pid"}, file); !equalOptions(got, file) || got.PIDFile != "a.pid" || got.Config != "" {
		t.Errorf("empty flags: got %+v", got)
	}
	flags := Options{Listen: []string{"a"}, SocketMode: 0o660, DeferAccept: 3 * time.Second, Workers: 2, Dir: "a", EnvFile: "a", EnvDrop: []string{"A"},
		Ready: "delay:2s", StopSignal: "INT", StopTimeout: 2 * time.Second, User: "a", Group: "a", LogFile: "a",
		LogFormat: "text", WorkerLogFile: "a"}
	if got := mergeOptions(flags, file); !equalOptions(got, flags) {
		t.Errorf("flags must win: got %+v", got)
	}
}

// TestLoadConfigChecks: values set through Options (the Go API) are
// checked by the same rows, and every problem is reported at once.
func TestLoadConfigChecks(t *testing.T) {
	_, err := loadConfig(Options{PIDFile: "p", Command: []string{"x"}, Listen: []string{"8080"},
		Workers: -1, StopTimeout: -time.Second, SocketMode: 0o1777, LogFormat: "yaml"}, t.TempDir())
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
	for _, want := range []string{"workers -1: want a number of at least 1", "stop-timeout -1s: want a positive duration",
		"socket-mode 01777: want octal permission bits", `log-format "yaml": want text or json`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	c, err := loadConfig(Options{PIDFile: "p", Command: []string{"x"}, Listen: []string{"8080"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.workers != DefaultWorkers || c.ready.String() != DefaultReady || c.stopTimeout != DefaultStopTimeout ||
		c.backoffMin != DefaultBackoffMin || c.backoffMax != DefaultBackoffMax || c.crashLoop != DefaultCrashLoop || c.logFormat != DefaultLogFormat || c.workerLog != "" {
		t.Errorf("defaults: %+v", c)
	}
}
