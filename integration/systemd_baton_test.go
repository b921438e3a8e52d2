package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The shipped baton@.service (and baton@.socket) under a real systemd
// (systemd_harness_test.go), running baton's demo app as instance "app",
// installed as scripts/systemd/baton@.service says:
//
//	/etc/systemd/system/baton@.service, baton@.socket   the shipped units
//	/etc/baton/app.conf                                 baton run's flags
//	/etc/baton/app.run                                  exec baton demo-app
//	/srv/app/releases/V/app.env, /srv/app/current       the releases
const (
	batonUnit   = "baton@app.service"
	batonSocket = "baton@app.socket"
	batonPID    = "/run/baton/app.pid"
	batonSock   = "/run/baton/app.sock"
	batonURL    = "http://127.0.0.1:8080/"
)

// batonAppConf is /etc/baton/app.conf.
const batonAppConf = `listen = 127.0.0.1:8080
listen = unix:/run/baton/app.sock
workers = 2
ready = notify
dir = /srv/app/current
envfile = /srv/app/current/app.env
stop-timeout = 10s
`

// installBatonApp installs the units and the demo app with release v1.
func (s *sdns) installBatonApp(ctx context.Context, t *testing.T) {
	t.Helper()
	s.install(t, "scripts/systemd/baton@.service", "/etc/systemd/system/baton@.service")
	s.install(t, "scripts/systemd/baton@.socket", "/etc/systemd/system/baton@.socket")
	s.write(t, "/etc/baton/app.conf", batonAppConf, 0o644)
	s.write(t, "/etc/baton/app.run", "#!/bin/sh\nexec /usr/local/bin/baton demo-app\n", 0o755)
	s.release(t, "v1", false)
	s.must(ctx, t, "systemctl", "daemon-reload")
}

// release deploys version v of the demo app (fail: its /health answers
// 500) and points /srv/app/current at it.
func (s *sdns) release(t testing.TB, v string, fail bool) {
	t.Helper()
	env := "DEMO_VERSION=" + v + "\n"
	if fail {
		env += "DEMO_FAIL=1\n"
	}
	s.write(t, "/srv/app/releases/"+v+"/app.env", env, 0o644)
	tmp := s.path("/srv/app/.current.tmp")
	os.Remove(tmp)
	if err := os.Symlink("releases/"+v, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path("/srv/app/current")); err != nil {
		t.Fatal(err)
	}
}

// demoExpect accepts the demo app's answers.
func demoExpect(status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d", status)
	}
	if !strings.HasPrefix(string(body), "version=") {
		return fmt.Errorf("body %q is not the demo app's", body)
	}
	return nil
}

// batonLoad is load on the app over TCP (keep-alive) and its unix socket.
func (s *sdns) batonLoad(ctx context.Context, t *testing.T) *traffic {
	t.Helper()
	return s.startLoad(ctx, t, batonUnit, demoExpect, batonURL, "unix:"+s.path(batonSock)+":/")
}

// wantServing waits until url answers with version v from inside the
// namespace.
func (s *sdns) wantServing(ctx context.Context, t testing.TB, url, v string) {
	t.Helper()
	mustWait(ctx, t, 30*time.Second, url+" serving "+v, func() (bool, error) {
		code, body, err := s.get(ctx, url)
		if err != nil {
			return false, err
		}
		if code != http.StatusOK || versionOf(body) != v {
			return false, fmt.Errorf("%d %q", code, body)
		}
		return true, nil
	})
}

// wantRunning checks that unit is active with a main pid that the pid file
// names and that is in the unit's cgroup, and returns it.
func (s *sdns) wantRunning(ctx context.Context, t testing.TB, unit, pidfile string) int {
	t.Helper()
	p := s.show(ctx, t, unit, "ActiveState", "SubState", "MainPID")
	if p["ActiveState"] != "active" || p["SubState"] != "running" {
		t.Fatalf("%s is %s (%s), want active (running)", unit, p["ActiveState"], p["SubState"])
	}
	pid, _ := strconv.Atoi(p["MainPID"])
	if pid <= 0 {
		t.Fatalf("%s has no main pid: %v", unit, p)
	}
	if got, err := readPid(s.path(pidfile)); err != nil || got != pid {
		t.Fatalf("%s: MainPID %d, pid file %s names %d (%v)", unit, pid, pidfile, got, err)
	}
	return pid
}

// wantStopped checks that unit ended inactive, not failed, with no process
// left in its cgroup.
func (s *sdns) wantStopped(ctx context.Context, t testing.TB, unit string) {
	t.Helper()
	mustWait(ctx, t, 90*time.Second, unit+" inactive", func() (bool, error) {
		p := s.show(ctx, t, unit, "ActiveState", "SubState", "Result")
		if p["ActiveState"] == "failed" {
			t.Fatalf("%s failed: %v", unit, p)
		}
		return p["ActiveState"] == "inactive", fmt.Errorf("%v", p)
	})
	if p := s.show(ctx, t, unit, "Result"); p["Result"] != "success" {
		t.Errorf("%s stopped with result %q, want success", unit, p["Result"])
	}
	if left := s.unitProcs(t, unit); len(left) > 0 {
		t.Errorf("%s is inactive but processes are left in its cgroup: %v", unit, left)
	}
}

// wantRefused checks that nothing answers on url any more.
func (s *sdns) wantRefused(ctx context.Context, t testing.TB, url string) {
	t.Helper()
	if code, body, err := s.get(ctx, url); err == nil {
		t.Errorf("%s still answers: %d %q", url, code, body)
	}
}

// TestSystemdBatonLifecycle: start, restart, stop, systemctl kill and a
// crash of the master (Restart=on-failure) of the shipped baton@.service.
func TestSystemdBatonLifecycle(t *testing.T) {
	s := bootSystemd(t)
	ctx := testContext(t)
	s.installBatonApp(ctx, t)

	if r := s.systemctl(ctx, t, "start", batonUnit); r.Code != 0 {
		t.Fatalf("start failed")
	}
	first := s.wantRunning(ctx, t, batonUnit, batonPID)
	s.wantServing(ctx, t, batonURL, "v1")

	s.systemctl(ctx, t, "restart", batonUnit)
	second := s.wantRunning(ctx, t, batonUnit, batonPID)
	if second == first {
		t.Errorf("restart kept main pid %d", first)
	}
	s.wantServing(ctx, t, batonURL, "v1")

	s.systemctl(ctx, t, "stop", batonUnit)
	s.wantStopped(ctx, t, batonUnit)
	s.wantRefused(ctx, t, batonURL)

	// systemctl kill: SIGTERM to every process of the unit, a fast stop.
	s.systemctl(ctx, t, "start", batonUnit)
	s.wantRunning(ctx, t, batonUnit, batonPID)
	s.systemctl(ctx, t, "kill", batonUnit)
	s.wantStopped(ctx, t, batonUnit)

	// A crash of the master: Restart=on-failure brings it back.
	s.systemctl(ctx, t, "start", batonUnit)
	crashed := s.wantRunning(ctx, t, batonUnit, batonPID)
	s.systemctl(ctx, t, "kill", "--kill-whom=main", "--signal=SIGKILL", batonUnit)
	mustWait(ctx, t, 60*time.Second, "the restart after the crash", func() (bool, error) {
		p := s.show(ctx, t, batonUnit, "NRestarts", "ActiveState", "SubState", "MainPID")
		return p["NRestarts"] == "1" && p["SubState"] == "running" && p["MainPID"] != strconv.Itoa(crashed), errors.New(fmt.Sprint(p))
	})
	s.wantRunning(ctx, t, batonUnit, batonPID)
	s.wantServing(ctx, t, batonURL, "v1")

	s.systemctl(ctx, t, "stop", batonUnit)
	s.wantStopped(ctx, t, batonUnit)
}
