package upgrade

import "testing"

// TestFloor: gunicorn honours WINCH only with --daemon; without it TTOU
// stops at one worker, and the drain must accept that one. With it, a worker
// still finishing a request is on its way out and the drain waits for it.
func TestFloor(t *testing.T) {
	gunicorn, err := LookupFlavor("gunicorn")
	if err != nil {
		t.Fatal(err)
	}
	nginx, err := LookupFlavor("nginx")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		flavor Flavor
		facts  MasterFacts
		want   int
	}{
		{name: "gunicorn-daemon-short", flavor: gunicorn, want: 0,
			facts: MasterFacts{Cmdline: []string{"/usr/bin/python3", "/usr/bin/gunicorn", "-D", "-w", "2", "app:app"}}},
		{name: "gunicorn-daemon-long", flavor: gunicorn, want: 0,
			facts: MasterFacts{Cmdline: []string{"/usr/bin/python3", "/usr/bin/gunicorn", "--daemon", "app:app"}}},
		{name: "gunicorn-daemon-from-env", flavor: gunicorn, want: 0,
			facts: MasterFacts{Cmdline: []string{"/usr/bin/python3", "/usr/bin/gunicorn", "app:app"}, Environ: []string{"GUNICORN_CMD_ARGS=--workers 2 -D"}}},
		{name: "gunicorn-foreground", flavor: gunicorn, want: 1,
			facts: MasterFacts{Cmdline: []string{"/usr/bin/python3", "/usr/bin/gunicorn", "-w", "2", "app:app"}}},
		{name: "gunicorn-app-named-D", flavor: gunicorn, want: 1,
			facts: MasterFacts{Cmdline: []string{"/usr/bin/python3", "/usr/bin/gunicorn", "--name", "-Dx", "app:app"}}},
		{name: "gunicorn-unreadable", flavor: gunicorn, want: 1},
		{name: "nginx-no-floor", flavor: nginx, want: 0,
			facts: MasterFacts{Cmdline: []string{"nginx: master process /usr/sbin/nginx"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.flavor.Floor(tt.facts); got != tt.want {
				t.Errorf("Floor = %d, want %d", got, tt.want)
			}
		})
	}
}
