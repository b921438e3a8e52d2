package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/upgrade/master"
)

// TestRunOptions: baton run's flags and their variables reach
// master.Options through the rows of master.RunOptions; flags not given stay
// zero so that the config file or the default fills them.
func TestRunOptions(t *testing.T) {
	t.Setenv(master.EnvStopSignal, "QUIT")
	var got master.Options
	read := func(c *cli.Context) error {
		var err error
		got, err = runOptions(c)
		return err
	}
	code, stderr := captureOptions(t, runCommand(), read, "--pidfile", "a.pid", "--listen", "127.0.0.1:0", "--listen", "unix:a.sock",
		"--workers", "3", "--socket-mode", "0660", "--stop-timeout", "2s", "--env-drop", "A", "--", "x")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := master.Options{PIDFile: "a.pid", Listen: []string{"127.0.0.1:0", "unix:a.sock"}, Workers: 3, SocketMode: 0o660,
		StopTimeout: 2e9, EnvDrop: []string{"A"}, StopSignal: "QUIT"}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("options\n got %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct {
		name string
		args []string
		say  string
	}{
		{name: "workers-zero", args: []string{"--workers", "0"}, say: `--workers "0": want a number of at least 1`},
		{name: "workers-text", args: []string{"--workers", "two"}, say: `--workers "two"`},
		{name: "socket-mode", args: []string{"--socket-mode", "999"}, say: "--socket-mode"},
		{name: "stop-timeout", args: []string{"--stop-timeout", "-1s"}, say: "want a positive duration"},
		{name: "ready", args: []string{"--ready", "sometimes"}, say: "want notify or delay:DURATION"},
		{name: "no-pidfile", args: nil, say: "pidfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.name != "no-pidfile" {
				args = append([]string{"--pidfile", "a.pid"}, args...)
			}
			code, stderr := captureOptions(t, runCommand(), read, append(args, "--", "x")...)
			if code != exitUsage || !strings.Contains(stderr, tc.say) {
				t.Errorf("exit %d, stderr %q; want %d saying %q", code, stderr, exitUsage, tc.say)
			}
		})
	}
}
