package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
)

// Debian's nginx.service, as the nginx package installs it, with baton's
// drop-ins (scripts/systemd/nginx.service.d: baton-upgrade.conf and
// baton-hardening.conf), under a real systemd (systemd_harness_test.go).
// The namespace's /etc/nginx/nginx.conf is the test's: Debian's pid file,
// user and log paths, one server on port 80 of the namespace's loopback,
// answering "nginx version=V pid=P". (No unix socket: nginx leaves its file
// behind when it is SIGKILLed and then refuses to start, "bind() to unix:...
// failed (98: Address already in use)", which the crash below would hit.)
const (
	nginxUnit = "nginx.service"
	nginxPID  = "/run/nginx.pid"
	nginxURL  = "http://127.0.0.1/"
)

// nginxConf is the namespace's /etc/nginx/nginx.conf serving version v.
func nginxConf(v string) string {
	return `user www-data;
worker_processes 2;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events {
	worker_connections 768;
}
http {
	access_log off;
	server {
		listen 127.0.0.1:80 default_server;
		location / {
			return 200 "nginx version=` + v + ` pid=$pid\n";
		}
	}
}
`
}

// installNginx installs the drop-ins and the configuration for v1.
func (s *sdns) installNginx(ctx context.Context, t *testing.T) {
	t.Helper()
	requirePeer(t, "/usr/sbin/nginx", "/lib/systemd/system/nginx.service")
	for _, f := range []string{"baton-upgrade.conf", "baton-hardening.conf"} {
		s.install(t, "scripts/systemd/nginx.service.d/"+f, "/etc/systemd/system/nginx.service.d/"+f)
	}
	s.write(t, "/etc/nginx/nginx.conf", nginxConf("v1"), 0o644)
	s.must(ctx, t, "systemctl", "daemon-reload")
}

func nginxExpect(status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d", status)
	}
	if !strings.HasPrefix(string(body), "nginx version=") {
		return fmt.Errorf("body %q is not the test's nginx", body)
	}
	return nil
}

// brokenNginx is a release of nginx that passes "nginx -t" (it runs the
// good binary for that) but exits at once as a master.
const brokenNginx = `#!/bin/sh
case " $* " in *" -t "*) exec /usr/sbin/nginx.good "$@" ;; esac
echo "nginx: this release is broken" >&2
exit 1
`

// TestSystemdNginx: Debian's nginx.service with baton's drop-ins, the
// sandboxing on: start, restart, stop, systemctl kill, a crash restarted
// (Restart=on-failure); under load with no failed request, the binary
// upgrade (the main pid moves), the configuration reload (it does not), a
// configuration "nginx -t" refuses, ten reloads in a row of either kind,
// and a broken new release rolled back; stop leaves nothing.
func TestSystemdNginx(t *testing.T) {
	t.Parallel() // long and self-contained: see doc.go, Time
	s := bootSystemd(t)
	ctx := testContext(t)
	s.installNginx(ctx, t)

	s.systemctl(ctx, t, "start", nginxUnit)
	pid := s.wantRunning(ctx, t, nginxUnit, nginxPID)
	s.wantServing(ctx, t, nginxURL, "v1")
	s.systemctl(ctx, t, "restart", nginxUnit)
	if now := s.wantRunning(ctx, t, nginxUnit, nginxPID); now == pid {
		t.Errorf("restart kept main pid %d", pid)
	}
	s.systemctl(ctx, t, "stop", nginxUnit)
	s.wantStopped(ctx, t, nginxUnit)
	s.wantRefused(ctx, t, nginxURL)
	s.systemctl(ctx, t, "start", nginxUnit)
	s.wantRunning(ctx, t, nginxUnit, nginxPID)
	s.systemctl(ctx, t, "kill", nginxUnit)
	s.wantStopped(ctx, t, nginxUnit)

	s.systemctl(ctx, t, "start", nginxUnit)
	crashed := s.wantRunning(ctx, t, nginxUnit, nginxPID)
	s.systemctl(ctx, t, "kill", "--kill-whom=main", "--signal=SIGKILL", nginxUnit)
	mustWait(ctx, t, 60*time.Second, "the restart after the crash", func() (bool, error) {
		p := s.show(ctx, t, nginxUnit, "NRestarts", "SubState", "MainPID")
		return p["NRestarts"] == "1" && p["SubState"] == "running" && p["MainPID"] != strconv.Itoa(crashed), errors.New(fmt.Sprint(p))
	})
	pid = s.wantRunning(ctx, t, nginxUnit, nginxPID)
	s.wantServing(ctx, t, nginxURL, "v1")

	tr := s.startLoad(ctx, t, nginxUnit, nginxExpect,
		load.Options{Target: nginxURL, Mode: load.KeepAlive},
		load.Options{Target: nginxURL, Mode: load.NewConn})
	tr.progress(ctx, t, 20)
	version := "v1"
	// One binary upgrade, one configuration reload, then ten in a row of
	// either kind.
	for i := 1; i <= 12; i++ {
		binary := i%2 == 1
		if binary {
			s.replaceELF(t, "/usr/sbin/nginx", "/usr/sbin/nginx")
			if !s.binaryReplaced(ctx, t, nginxPID, "nginx") {
				t.Fatalf("reload %d: baton's status does not say nginx's binary was replaced", i)
			}
		} else {
			version = "v" + strconv.Itoa(i)
			s.write(t, "/etc/nginx/nginx.conf", nginxConf(version), 0o644)
		}
		if r := s.systemctl(ctx, t, "reload", nginxUnit); r.Code != 0 {
			t.Fatalf("reload %d failed", i)
		}
		now := s.wantRunning(ctx, t, nginxUnit, nginxPID)
		if binary && now == pid {
			t.Errorf("reload %d, a binary upgrade: the main pid stayed %d", i, pid)
		}
		if !binary && now != pid {
			t.Errorf("reload %d, a configuration reload: the main pid moved %d -> %d", i, pid, now)
		}
		pid = now
		s.wantServing(ctx, t, nginxURL, version)
		tr.progress(ctx, t, 10)
	}

	// A configuration "nginx -t" refuses: nothing signalled, the reload
	// fails.
	s.write(t, "/etc/nginx/nginx.conf", nginxConf("v99")+"}\n", 0o644)
	if r := s.systemctl(ctx, t, "reload", nginxUnit); r.Code == 0 {
		t.Errorf("the reload of a broken configuration succeeded")
	}
	s.write(t, "/etc/nginx/nginx.conf", nginxConf(version), 0o644)
	if now := s.wantRunning(ctx, t, nginxUnit, nginxPID); now != pid {
		t.Errorf("a refused reload moved the main pid %d -> %d", pid, now)
	}

	// A broken new release: the upgrade rolls back, the reload fails, the
	// old master serves.
	if err := copyFile("/usr/sbin/nginx", s.path("/usr/sbin/nginx.good"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.write(t, "/usr/sbin/nginx", brokenNginx, 0o755)
	if r := s.systemctl(ctx, t, "reload", nginxUnit); r.Code == 0 {
		t.Errorf("the reload of a broken release succeeded")
	}
	if now := s.wantRunning(ctx, t, nginxUnit, nginxPID); now != pid {
		t.Errorf("a failed upgrade moved the main pid %d -> %d", pid, now)
	}
	s.wantServing(ctx, t, nginxURL, version)
	tr.progress(ctx, t, 10)
	res := tr.stop(t)
	assertNoFailures(t, res...)
	recordFigures(t, res)

	s.systemctl(ctx, t, "stop", nginxUnit)
	s.wantStopped(ctx, t, nginxUnit)
	s.wantRefused(ctx, t, nginxURL)
}
