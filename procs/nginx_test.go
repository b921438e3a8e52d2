//go:build linux

package procs

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nginxPath = "/usr/sbin/nginx"

// A real nginx: its titles, its master/worker roles and the listener the
// worker inherited from the master.
func TestNginx(t *testing.T) {
	if _, err := os.Stat(nginxPath); err != nil {
		t.Skipf("no nginx: %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	conf := filepath.Join(dir, "nginx.conf")
	err := os.WriteFile(conf, []byte(`
daemon off;
master_process on;
worker_processes 1;
pid `+filepath.Join(dir, "nginx.pid")+`;
error_log stderr notice;
events {}
http {
	access_log off;
	server {
		listen unix:`+sock+`;
		location / { return 200 "ok\n"; }
	}
}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, nginxPath, "-p", dir, "-c", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	master := cmd.Process.Pid
	recordStarted(t, master)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	// Ready handshake: the master logs "start worker processes" after it
	// bound the socket; the worker answers a request only once it runs its
	// cycle, after it set its title.
	r := bufio.NewReader(stderr)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("nginx stderr ended before it started workers: %v", err)
		}
		if strings.Contains(line, "start worker processes") {
			break
		}
	}
	go io.Copy(io.Discard, r) // keep nginx from blocking on its log
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://nginx/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	client.CloseIdleConnections()

	st, err := Info(master)
	if err != nil {
		t.Fatal(err)
	}
	if st.Role() != RoleMaster || len(st.Cmdline) != 1 || !strings.HasPrefix(st.Cmdline[0], "nginx: master process "+nginxPath) {
		t.Errorf("master: role %v cmdline %q", st.Role(), st.Cmdline)
	}
	if st.Exe != nginxPath || st.Comm != "nginx" {
		t.Errorf("master: exe %q comm %q", st.Exe, st.Comm)
	}
	workers, err := ChildrenByRole(master, RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	if len(workers) != 1 {
		t.Fatalf("workers = %+v, want 1", workers)
	}
	w := workers[0]
	recordStarted(t, w.PID)
	if !slices.Equal(w.Cmdline, []string{"nginx: worker process"}) {
		t.Errorf("worker cmdline %q", w.Cmdline)
	}
	masters, err := ChildrenByRole(master, RoleMaster)
	if err != nil || len(masters) != 0 {
		t.Errorf("ChildrenByRole(master) = %v, %v; want none", masters, err)
	}

	ml, err := Listeners(master)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := Listeners(w.PID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml) != 1 || ml[0].Addr != sock || ml[0].Network != "unix" {
		t.Fatalf("master listeners = %+v, want unix %s", ml, sock)
	}
	if len(wl) != 1 || wl[0].Inode != ml[0].Inode {
		t.Errorf("worker listeners = %+v, want the master's %+v", wl, ml[0])
	}

	// QUIT: graceful stop; Wait on the worker, a grandchild of nothing we
	// started directly.
	p, err := OpenIdentity(w.Identity())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m, err := Open(master)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("wait for the worker: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("nginx exited: %v", err)
	}
}
