package integration

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMasterRefusesBadInput runs `baton run` with input that used to start
// a master anyway (a missing or malformed envfile, a missing --dir: workers
// crash-looping forever), fork without bound (--workers 5000) or say
// something beside the point (--user nosuchuser: strconv.Atoi). Each must
// exit 2 with one line naming the bad setting, before it binds anything:
// no pid file, the port still free.
func TestMasterRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	malformed := filepath.Join(dir, "malformed.env")
	writeFile(t, malformed, "GOOD=1\nthis line is no assignment\n", 0o644)
	notDir := filepath.Join(dir, "file")
	writeFile(t, notDir, "", 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string // in the one line baton prints
	}{
		{name: "envfile-missing", args: []string{"--envfile", filepath.Join(dir, "no.env")}, want: "no.env"},
		{name: "envfile-malformed", args: []string{"--envfile", malformed}, want: "malformed.env:2"},
		{name: "dir-missing", args: []string{"--dir", filepath.Join(dir, "no-such-dir")}, want: "dir " + filepath.Join(dir, "no-such-dir") + " does not exist"},
		{name: "dir-not-a-directory", args: []string{"--dir", notDir}, want: "is not a directory"},
		{name: "workers-over-cap", args: []string{"--workers", "1025"}, want: "workers 1025: want 1 to 1024"},
		{name: "user-unknown", args: []string{"--user", "nosuchuser"}, want: `user "nosuchuser" does not exist`},
		{name: "group-unknown", args: []string{"--group", "nosuchgroup"}, want: `group "nosuchgroup" does not exist`},
		{name: "log-format-unknown", args: []string{"--log-format", "xml"}, want: `--log-format "xml": want text or json`},
		{name: "worker-log-unwritable", args: []string{"--worker-log-file", filepath.Join(dir, "no-such-dir", "w.log")}, want: "no-such-dir/w.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A master that wrongly starts never exits by itself: the
			// deadline turns that into a failure, not a hung test.
			ctx, cancel := context.WithTimeout(testContext(t), 20*time.Second)
			defer cancel()
			pidfile := filepath.Join(t.TempDir(), "m.pid")
			port := freePort(t)
			addr := "127.0.0.1:" + strconv.Itoa(port)
			args := append([]string{"run", "--pidfile", pidfile, "--listen", addr}, tc.args...)
			args = append(args, "--", "/bin/true")
			r := batonCmd(ctx, t, args...)
			r.wantCode(t, 2)
			msg := strings.TrimSpace(r.Stderr)
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
				t.Errorf("want one line naming %q, got:\n%s", tc.want, r.Stderr)
			}
			if strings.Contains(msg, "strconv") {
				t.Errorf("the message reports a parse error beside the point: %s", msg)
			}
			if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
				t.Errorf("pid file %s: %v; nothing should have been created", pidfile, err)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("%s is taken after a refused start: %v", addr, err)
			} else {
				ln.Close()
			}
		})
	}
}
