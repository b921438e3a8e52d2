package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
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

// startBatonUnderLoad installs the demo app's unit with the tests' upgrade
// options, starts it, and puts load on it (batonLoad) until 20 requests
// were answered: the main pid it runs as, and the load.
func (s *sdns) startBatonUnderLoad(ctx context.Context, t *testing.T) (int, *traffic) {
	t.Helper()
	s.installBatonApp(ctx, t)
	s.upgradeOpts(ctx, t, testUpgradeOpts)
	s.systemctl(ctx, t, "start", batonUnit)
	pid := s.wantRunning(ctx, t, batonUnit, batonPID)
	tr := s.batonLoad(ctx, t)
	tr.progress(ctx, t, 20)
	return pid, tr
}

// batonLoad is load on the app from the namespace: keep-alive over TCP on
// its loopback, a connection per request over the unix socket.
func (s *sdns) batonLoad(ctx context.Context, t *testing.T) *traffic {
	t.Helper()
	return s.startLoad(ctx, t, batonUnit, demoExpect,
		load.Options{Target: batonURL, Mode: load.KeepAlive},
		load.Options{Target: "unix:" + s.path(batonSock) + ":/", Mode: load.NewConn})
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

// waitRunning waits until unit is active (running), a socket-activated
// service being ready only once its master says READY=1, then checks it as
// wantRunning does.
func (s *sdns) waitRunning(ctx context.Context, t testing.TB, unit, pidfile string) int {
	t.Helper()
	mustWait(ctx, t, 60*time.Second, unit+" running", func() (bool, error) {
		p := s.show(ctx, t, unit, "ActiveState", "SubState")
		return p["SubState"] == "running", fmt.Errorf("%v", p)
	})
	return s.wantRunning(ctx, t, unit, pidfile)
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

// upgradeOpts sets UPGRADE_OPTS for baton@app.service in a drop-in, as
// the unit's header says ("systemctl edit").
func (s *sdns) upgradeOpts(ctx context.Context, t *testing.T, opts string) {
	t.Helper()
	s.write(t, "/etc/systemd/system/baton@app.service.d/upgrade-opts.conf", "[Service]\nEnvironment=\"UPGRADE_OPTS="+opts+"\"\n", 0o644)
	s.must(ctx, t, "systemctl", "daemon-reload")
}

// testUpgradeOpts are the checks the tests' reloads run, with a short
// verify period to keep the tests fast.
const testUpgradeOpts = "--check http://127.0.0.1:8080/health --verify-for 500ms"

// binaryReplaced reports what baton's status JSON says of the running
// master: binary_replaced.
func (s *sdns) binaryReplaced(ctx context.Context, t testing.TB, pidfile, flavor string) bool {
	t.Helper()
	r := s.must(ctx, t, "baton", "upgrade", "status", "--flavor", flavor, "--pidfile", pidfile, "--json")
	var rep struct {
		Old *struct {
			BinaryReplaced bool `json:"binary_replaced"`
		} `json:"old"`
		New *struct {
			BinaryReplaced bool `json:"binary_replaced"`
		} `json:"new"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("baton upgrade status --json: %v\n%s", err, r.Stdout)
	}
	switch {
	case rep.Old != nil:
		return rep.Old.BinaryReplaced
	case rep.New != nil:
		return rep.New.BinaryReplaced
	}
	t.Fatalf("baton upgrade status names no master:\n%s", r.Stdout)
	return false
}

// wantMainMoved waits until systemd's main pid of unit is the master the
// pid file names and differs from old, and returns it. systemd learns it
// when the old master exits (PIDFile=), as it handles that exit.
func (s *sdns) wantMainMoved(ctx context.Context, t testing.TB, unit, pidfile string, old int) int {
	t.Helper()
	var now int
	mustWait(ctx, t, 30*time.Second, unit+"'s main pid moving from "+strconv.Itoa(old), func() (bool, error) {
		now = s.mainPID(ctx, t, unit)
		file, err := readPid(s.path(pidfile))
		if err != nil {
			return false, err
		}
		return now != old && now == file, fmt.Errorf("MainPID %d, pid file %d", now, file)
	})
	return s.wantRunning(ctx, t, unit, pidfile)
}

// wantStatusText waits until unit's StatusText (the main process's
// STATUS=) starts with prefix.
func (s *sdns) wantStatusText(ctx context.Context, t testing.TB, unit, prefix string) string {
	t.Helper()
	var text string
	mustWait(ctx, t, 30*time.Second, unit+" status "+strconv.Quote(prefix), func() (bool, error) {
		text = s.show(ctx, t, unit, "StatusText")["StatusText"]
		return strings.HasPrefix(text, prefix), fmt.Errorf("StatusText=%q", text)
	})
	return text
}

// TestSystemdBatonUpgrade: "systemctl reload" after the baton binary was
// replaced on disk is the checked binary upgrade: systemd's main pid moves
// to the new master and the unit stays active, 11 times in a row, under
// load with no failed request; "systemctl stop" then leaves the unit
// inactive, not failed, with no process of any generation.
func TestSystemdBatonUpgrade(t *testing.T) {
	t.Parallel() // long and self-contained: see doc.go, Time
	s := bootSystemd(t)
	ctx := testContext(t)
	pid, tr := s.startBatonUnderLoad(ctx, t)
	for i := 1; i <= 11; i++ {
		s.replaceBaton(t)
		if !s.binaryReplaced(ctx, t, batonPID, "baton") {
			t.Fatalf("reload %d: baton's status does not say the binary was replaced", i)
		}
		if r := s.systemctl(ctx, t, "reload", batonUnit); r.Code != 0 {
			t.Fatalf("reload %d failed", i)
		}
		// A successful reload re-reads PIDFile=: the main pid has moved
		// by the time systemctl returns.
		now := s.wantRunning(ctx, t, batonUnit, batonPID)
		if now == pid {
			t.Fatalf("reload %d: the main pid stayed %d", i, pid)
		}
		if s.binaryReplaced(ctx, t, batonPID, "baton") {
			t.Errorf("reload %d: the new master %d runs a replaced binary", i, now)
		}
		pid = now
		tr.progress(ctx, t, 10)
	}
	s.wantStatusText(ctx, t, batonUnit, "serving: generation 12, 2 workers")
	res := tr.stop(t)
	assertNoFailures(t, res...)
	recordFigures(t, res)

	s.systemctl(ctx, t, "stop", batonUnit)
	s.wantStopped(ctx, t, batonUnit)
	s.wantRefused(ctx, t, batonURL)
	for _, f := range []string{batonPID, batonPID + ".oldbin"} {
		if _, err := os.Stat(s.path(f)); err == nil {
			t.Errorf("%s is left after stop", f)
		}
	}
}

// TestSystemdBatonReload: "systemctl reload" keeps its meaning: a
// configuration reload (HUP: a new generation, the same main pid) while
// the binary on disk is the running one, a refused configuration failing
// the reload with nothing changed, "baton reload --mode" forcing either
// way, the binary upgrade once the binary was replaced, and a broken new
// release rolled back with the old main pid serving; all under load with
// no failed request.
func TestSystemdBatonReload(t *testing.T) {
	s := bootSystemd(t)
	ctx := testContext(t)
	pid, tr := s.startBatonUnderLoad(ctx, t)

	// A new release, the same binary: a configuration reload.
	s.release(t, "v2", false)
	if r := s.systemctl(ctx, t, "reload", batonUnit); r.Code != 0 {
		t.Fatalf("configuration reload failed")
	}
	if now := s.wantRunning(ctx, t, batonUnit, batonPID); now != pid {
		t.Errorf("a configuration reload moved the main pid %d -> %d", pid, now)
	}
	s.wantServing(ctx, t, batonURL, "v2")
	s.wantStatusText(ctx, t, batonUnit, "serving: generation 2, 2 workers")
	tr.progress(ctx, t, 10)

	// A configuration the master refuses: the reload fails, nothing moves.
	s.write(t, "/etc/baton/app.conf", strings.Replace(batonAppConf, "workers = 2", "workers = many", 1), 0o644)
	if r := s.systemctl(ctx, t, "reload", batonUnit); r.Code == 0 {
		t.Errorf("a reload with a refused configuration succeeded")
	}
	s.write(t, "/etc/baton/app.conf", batonAppConf, 0o644)
	if now := s.wantRunning(ctx, t, batonUnit, batonPID); now != pid {
		t.Errorf("a refused reload moved the main pid %d -> %d", pid, now)
	}
	s.wantServing(ctx, t, batonURL, "v2")
	tr.progress(ctx, t, 10)

	// Forced by hand: a binary upgrade of the same binary...
	by := []string{"baton", "reload", "--flavor", "baton", "--pidfile", batonPID, "--verify-for", "500ms", "--check", "http://127.0.0.1:8080/health", "--mode"}
	s.must(ctx, t, append(by, "binary")...)
	pid = s.wantMainMoved(ctx, t, batonUnit, batonPID, pid)
	tr.progress(ctx, t, 10)
	// ...and a configuration reload although the binary was replaced.
	s.replaceBaton(t)
	s.must(ctx, t, append(by, "config")...)
	if now := s.wantRunning(ctx, t, batonUnit, batonPID); now != pid {
		t.Errorf("a forced configuration reload moved the main pid %d -> %d", pid, now)
	}
	if !s.binaryReplaced(ctx, t, batonPID, "baton") {
		t.Errorf("after a configuration reload the master should still run the replaced binary")
	}
	tr.progress(ctx, t, 10)
	// The binary was replaced: "systemctl reload" upgrades it.
	if r := s.systemctl(ctx, t, "reload", batonUnit); r.Code != 0 {
		t.Fatalf("binary upgrade failed")
	}
	pid = s.wantMainMoved(ctx, t, batonUnit, batonPID, pid)
	if s.binaryReplaced(ctx, t, batonPID, "baton") {
		t.Errorf("after the binary upgrade the master still runs the replaced binary")
	}
	tr.progress(ctx, t, 10)

	// A broken new release with a new binary: the upgrade rolls back, the
	// reload fails, the old main pid serves the old release.
	s.replaceBaton(t)
	s.release(t, "v3", true)
	if r := s.systemctl(ctx, t, "reload", batonUnit); r.Code == 0 {
		t.Errorf("the reload of a broken release succeeded")
	}
	if now := s.wantRunning(ctx, t, batonUnit, batonPID); now != pid {
		t.Errorf("a failed upgrade moved the main pid %d -> %d", pid, now)
	}
	s.wantStatusText(ctx, t, batonUnit, "rolled back: ")
	s.wantServing(ctx, t, batonURL, "v2")
	tr.progress(ctx, t, 10)
	res := tr.stop(t)
	assertNoFailures(t, res...)
	assertSawVersions(t, res, "v1", "v2")
	recordFigures(t, res)

	s.systemctl(ctx, t, "stop", batonUnit)
	s.wantStopped(ctx, t, batonUnit)
}
