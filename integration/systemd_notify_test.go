package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
)

// batonSocketConf is /etc/baton/app.conf for socket activation: the one
// listener is baton@.socket's ListenStream=.
const batonSocketConf = `listen = unix:/run/baton/app.sock
workers = 2
ready = notify
dir = /srv/app/current
envfile = /srv/app/current/app.env
stop-timeout = 10s
`

// TestSystemdBatonSocket: with baton@.socket, the first request starts the
// service; a binary upgrade keeps the very socket (its inode); a restart
// of the service under load fails no request (connections queue on the
// socket systemd holds); stopping the service leaves the socket unit
// listening, and the next request starts the service again.
func TestSystemdBatonSocket(t *testing.T) {
	s := bootSystemd(t)
	ctx := testContext(t)
	s.installBatonApp(ctx, t)
	s.upgradeOpts(ctx, t, "--check unix:/run/baton/app.sock:/health --verify-for 500ms")
	s.write(t, "/etc/baton/app.conf", batonSocketConf, 0o644)
	s.systemctl(ctx, t, "start", batonSocket)
	if p := s.show(ctx, t, batonUnit, "ActiveState"); p["ActiveState"] != "inactive" {
		t.Fatalf("%s is %s before any request", batonUnit, p["ActiveState"])
	}
	inode := s.socketInode(t)
	url := "unix:" + batonSock + ":/"
	s.wantServing(ctx, t, url, "v1")
	pid := s.waitRunning(ctx, t, batonUnit, batonPID)

	tr := s.startLoad(ctx, t, batonUnit, demoExpect,
		load.Options{Target: "unix:" + s.path(batonSock) + ":/", Mode: load.KeepAlive},
		load.Options{Target: "unix:" + s.path(batonSock) + ":/", Mode: load.NewConn})
	tr.progress(ctx, t, 20)
	s.replaceBaton(t)
	if r := s.systemctl(ctx, t, "reload", batonUnit); r.Code != 0 {
		t.Fatalf("reload failed")
	}
	pid = s.wantMainMoved(ctx, t, batonUnit, batonPID, pid)
	s.wantSocketListening(ctx, t, inode, "running")
	tr.progress(ctx, t, 20)
	s.systemctl(ctx, t, "restart", batonUnit)
	if now := s.wantRunning(ctx, t, batonUnit, batonPID); now == pid {
		t.Errorf("restart kept main pid %d", pid)
	}
	tr.progress(ctx, t, 20)
	res := tr.stop(t)
	assertNoFailures(t, res...)
	recordFigures(t, res)

	s.systemctl(ctx, t, "stop", batonUnit)
	s.wantStopped(ctx, t, batonUnit)
	s.wantSocketListening(ctx, t, inode, "listening")
	s.wantServing(ctx, t, url, "v1")
	s.waitRunning(ctx, t, batonUnit, batonPID)

	s.systemctl(ctx, t, "stop", batonSocket, batonUnit)
	s.wantStopped(ctx, t, batonUnit)
	if p := s.show(ctx, t, batonSocket, "ActiveState", "Result"); p["ActiveState"] != "inactive" || p["Result"] != "success" {
		t.Errorf("%s after stop: %v", batonSocket, p)
	}
}

// socketInode is the inode of baton@.socket's socket file.
func (s *sdns) socketInode(t testing.TB) uint64 {
	t.Helper()
	fi, err := os.Stat(s.path(batonSock))
	if err != nil {
		t.Fatalf("the socket unit's socket: %v", err)
	}
	return inodeOf(fi)
}

// wantSocketListening checks that baton@.socket is active on the same
// socket file: "running" while its service runs, else "listening".
func (s *sdns) wantSocketListening(ctx context.Context, t testing.TB, inode uint64, sub string) {
	t.Helper()
	if p := s.show(ctx, t, batonSocket, "ActiveState", "SubState"); p["ActiveState"] != "active" || p["SubState"] != sub {
		t.Errorf("%s is %s (%s), want active (%s)", batonSocket, p["ActiveState"], p["SubState"], sub)
	}
	if got := s.socketInode(t); got != inode {
		t.Errorf("the socket file is inode %d now, was %d", got, inode)
	}
}

// TestSystemdBatonNotify: "systemctl status" shows what baton does (its
// STATUS= line), through an upgrade parked by hand and rolled back; with
// WatchdogSec= the pings keep the unit alive through a binary upgrade (the
// new master takes them over) and a hung master is killed and restarted.
func TestSystemdBatonNotify(t *testing.T) {
	t.Parallel() // long and self-contained: see doc.go, Time
	s := bootSystemd(t)
	ctx := testContext(t)
	s.installBatonApp(ctx, t)
	s.upgradeOpts(ctx, t, testUpgradeOpts)
	const watchdog = 2 * time.Second
	s.write(t, "/etc/systemd/system/baton@app.service.d/watchdog.conf",
		fmt.Sprintf("[Service]\nWatchdogSec=%ds\nTimeoutAbortSec=2s\n", int(watchdog.Seconds())), 0o644)
	s.must(ctx, t, "systemctl", "daemon-reload")
	s.systemctl(ctx, t, "start", batonUnit)
	pid := s.wantRunning(ctx, t, batonUnit, batonPID)
	s.wantStatusText(ctx, t, batonUnit, "serving: generation 1, 2 workers")

	// An upgrade started by hand parks with both masters; the old one, the
	// main pid, says so. A rollback says so too.
	s.replaceBaton(t)
	s.must(ctx, t, "baton", "upgrade", "start", "--flavor", "baton", "--pidfile", batonPID, "--verify-for", "0")
	nu, err := readPid(s.path(batonPID))
	if err != nil {
		t.Fatal(err)
	}
	s.wantStatusText(ctx, t, batonUnit, "upgrading: new master "+strconv.Itoa(nu)+" serves; this master waits for the commit")
	s.must(ctx, t, "baton", "upgrade", "rollback", "--flavor", "baton", "--pidfile", batonPID)
	s.wantStatusText(ctx, t, batonUnit, "rolled back: generation 3 serves, new master "+strconv.Itoa(nu)+" given up")
	if now := s.wantRunning(ctx, t, batonUnit, batonPID); now != pid {
		t.Errorf("the rollback moved the main pid %d -> %d", pid, now)
	}

	// The binary upgrade under the watchdog: the new master's pings keep
	// the unit up for more than two periods after the main pid moved.
	if r := s.systemctl(ctx, t, "reload", batonUnit); r.Code != 0 {
		t.Fatalf("reload failed")
	}
	pid = s.wantMainMoved(ctx, t, batonUnit, batonPID, pid)
	s.wantStatusText(ctx, t, batonUnit, "serving: generation 4, 2 workers")
	first := s.watchdogStamp(ctx, t)
	mustWait(ctx, t, 30*time.Second, "the new master's pings over two watchdog periods", func() (bool, error) {
		p := s.show(ctx, t, batonUnit, "MainPID", "NRestarts", "ActiveState")
		if p["MainPID"] != strconv.Itoa(pid) || p["NRestarts"] != "0" || p["ActiveState"] != "active" {
			t.Fatalf("the unit did not keep its new main pid %d: %v", pid, p)
		}
		last := s.watchdogStamp(ctx, t)
		return last-first >= 2*watchdog, fmt.Errorf("pings over %v", last-first)
	})

	// A master that hangs stops pinging: systemd aborts it and
	// Restart=on-failure starts the unit again.
	s.systemctl(ctx, t, "kill", "--kill-whom=main", "--signal=SIGSTOP", batonUnit)
	mustWait(ctx, t, 60*time.Second, "the watchdog's restart", func() (bool, error) {
		p := s.show(ctx, t, batonUnit, "NRestarts", "SubState", "MainPID")
		return p["NRestarts"] == "1" && p["SubState"] == "running" && p["MainPID"] != strconv.Itoa(pid), errors.New(fmt.Sprint(p))
	})
	s.wantRunning(ctx, t, batonUnit, batonPID)
	s.wantServing(ctx, t, batonURL, "v1")
	if r := s.run(ctx, "journalctl", "-u", batonUnit, "--no-pager", "-o", "cat", "--grep", "Watchdog timeout"); r.Code != 0 {
		t.Errorf("the journal does not say the watchdog fired: %s%s", r.Stdout, r.Stderr)
	}

	s.systemctl(ctx, t, "stop", batonUnit)
	s.wantStopped(ctx, t, batonUnit)
}

// watchdogStamp is when systemd last accepted a watchdog ping of the unit
// (WatchdogTimestampMonotonic).
func (s *sdns) watchdogStamp(ctx context.Context, t testing.TB) time.Duration {
	t.Helper()
	v := s.show(ctx, t, batonUnit, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("WatchdogTimestampMonotonic=%q: %v", v, err)
	}
	return time.Duration(us) * time.Microsecond
}
