package procs

import "testing"

func TestRole(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmdline string // as /proc/PID/cmdline holds it
		want    Role
	}{
		// Captured from nginx 1.22, unicorn 6.0 on this machine.
		{"nginx master", "nginx: master process /usr/sbin/nginx -p /tmp/ngx -c /tmp/ngx/nginx.conf -g daemon on;\x00", RoleMaster},
		{"nginx master no args", "nginx: master process nginx\x00", RoleMaster},
		{"nginx worker", "nginx: worker process\x00\x00\x00\x00\x00\x00\x00\x00", RoleWorker},
		{"nginx worker shutting down", "nginx: worker process is shutting down\x00\x00", RoleWorker},
		{"nginx cache manager", "nginx: cache manager process\x00\x00\x00", RoleUnknown},
		{"nginx cache loader", "nginx: cache loader process\x00\x00\x00", RoleUnknown},
		{"nginx before the title", "/usr/sbin/nginx\x00-g\x00daemon off;\x00", RoleUnknown},
		{"unicorn master", "unicorn master -c u.rb -D config.ru\x00\x00\x00\x00", RoleMaster},
		{"unicorn old master", "unicorn master (old) -c u.rb -D config.ru\x00\x00", RoleMaster},
		{"unicorn worker", "unicorn worker[0] -c u.rb -D config.ru\x00\x00\x00", RoleWorker},
		{"unicorn worker 12", "unicorn worker[12] -c u.rb\x00", RoleWorker},
		{"unicorn_rails master", "unicorn_rails master -c config/unicorn.rb\x00", RoleMaster},
		{"rainbows master", "rainbows master -c rainbows.rb\x00", RoleMaster},
		{"rainbows worker", "rainbows worker[1] -c rainbows.rb\x00", RoleWorker},
		{"unicorn before the title", "/usr/bin/ruby\x00/usr/bin/unicorn\x00-c\x00u.rb\x00", RoleUnknown},
		{"gunicorn master", "gunicorn: master [app:app]\x00", RoleMaster},
		{"gunicorn worker", "gunicorn: worker [app:app]\x00", RoleWorker},
		// Debian's gunicorn without python3-setproctitle keeps its argv.
		{"gunicorn without setproctitle", "/usr/bin/python3\x00/usr/bin/gunicorn\x00-w\x002\x00app:app\x00", RoleUnknown},
		{"baton run", "/usr/local/bin/baton\x00run\x00--pidfile\x00/run/app.pid\x00--\x00/srv/app\x00", RoleMaster},
		{"baton run after global flags", "baton\x00--log-level=debug\x00run\x00--pidfile\x00p\x00--\x00app\x00", RoleMaster},
		{"baton versioned copy", "/opt/baton-1.2.0\x00run\x00--pidfile\x00p\x00--\x00app\x00", RoleMaster},
		{"baton renamed for a swap", "/tmp/x/baton.new\x00run\x00--\x00app\x00", RoleMaster},
		{"not baton", "/usr/bin/batonnier\x00run\x00", RoleUnknown},
		{"baton test binary", "/tmp/go-build1/baton.test\x00-test.run=X\x00", RoleUnknown},
		{"baton upgrade", "baton\x00upgrade\x00start\x00--pidfile\x00run\x00", RoleUnknown},
		{"run only in the command", "baton\x00demo-app\x00--\x00run\x00", RoleUnknown},
		{"baton worker command", "/srv/app\x00run\x00", RoleUnknown},
		{"baton master title", "baton: master /run/app.pid\x00", RoleMaster},
		{"puma", "puma 5.6.4 (tcp://0.0.0.0:9292) [app]\x00", RoleUnknown},
		{"empty (zombie)", "", RoleUnknown},
		{"almost nginx", "nginx: masterful\x00", RoleUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Stat{Cmdline: splitCmdline([]byte(tc.cmdline))}
			if got := s.Role(); got != tc.want {
				t.Errorf("Role(%q) = %v, want %v", s.Cmdline, got, tc.want)
			}
		})
	}
}

func TestRoleString(t *testing.T) {
	for r, want := range map[Role]string{RoleUnknown: "unknown", RoleMaster: "master", RoleWorker: "worker", 9: "unknown"} {
		if got := r.String(); got != want {
			t.Errorf("Role(%d).String() = %q, want %q", r, got, want)
		}
	}
}
