package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRollbackSweepSocketActivation: under socket activation the listening
// sockets are held by whoever passed them (systemd, the master's parent),
// and a worker script that runs its server without exec leaves the server
// a grandchild of the master, holding them too. A failed upgrade rolls back
// under load; its sweep of the new generation's leftovers must signal none
// of them, nor an unrelated process holding the sockets: all run on, the
// old generation serves with the very processes it had, and no request
// fails.
func TestRollbackSweepSocketActivation(t *testing.T) {
	ctx := testContext(t)
	p, holders := startActivatedBaton(ctx, t)
	tr := startLoad(ctx, t, p)
	tr.progress(ctx, t, 10)
	old := p.masterPID(t)
	workers := p.workersOf(old)
	var servers []proc // the old workers' children: the servers
	for _, w := range workers {
		servers = append(servers, children(w.pid)...)
	}
	if len(workers) != p.workers || len(servers) != p.workers {
		t.Fatalf("old master %d has workers %v running servers %v, want %d of each", old, workers, servers, p.workers)
	}

	// The new release is unhealthy, and a check that fails while the old
	// master is parked makes the spawn fail: the rollback comes before
	// any drain, so the old generation keeps the processes it had.
	p.release(t, "v2")
	p.setFail(t, true)
	parked := "exec:test ! -e " + p.pidfile + ".oldbin"
	r := p.upgrade(ctx, t, "start", "--check", parked, "--spawn-timeout", "5s", "--stop-timeout", "3s", "--commit")
	r.wantCode(t, 1)
	for _, h := range holders {
		if data, _ := os.ReadFile(h.record); len(data) > 0 {
			t.Errorf("%s %d received signals: %q", h.what, h.pid, data)
		}
		if !alive(h.pid) {
			t.Errorf("%s %d is gone", h.what, h.pid)
		}
		if !strings.Contains(r.Stderr, strconv.Itoa(h.pid)+" (") {
			t.Errorf("upgrade start does not say it left %s %d alone:\n%s", h.what, h.pid, r.Stderr)
		}
	}
	for _, pr := range append(workers, servers...) {
		if now, err := readProc(pr.pid); err != nil || now.zombie() || now.start != pr.start {
			t.Errorf("old generation's %d (%s) is gone after the rollback", pr.pid, pr.cmdline)
		}
	}
	p.wantRolledBack(ctx, t, old)
	p.finish(ctx, t, tr, "v1", old, "v1")
}

// holder is a process outside both generations that holds the listening
// sockets.
type holder struct {
	what   string
	pid    int
	record string // the signals it received, one name per line
}

// startActivatedBaton starts `baton run` the way systemd's socket
// activation does (scripts/systemd/baton@.socket): the test binds the
// listeners and hands them to a holder (the socket-holder helper), which
// keeps them open and starts the master with them (LISTEN_FDS, LISTEN_PID
// set to the master's own pid), staying its parent. An unrelated process
// (a witness) holds them too; the test keeps no copy. Each worker runs a
// script that runs the demo app without exec, so the server is the
// master's grandchild. It returns the peer once it serves, and the two
// holders.
func startActivatedBaton(ctx context.Context, t *testing.T) (*peer, []holder) {
	t.Helper()
	p := newPeer(t, flavorBaton, peerOptions{})
	p.bin = p.installBin(t, batonBin, "baton")
	app := p.installBin(t, batonBin, "app")
	worker := filepath.Join(p.dir, "bin", "worker.sh")
	writeFile(t, worker, fmt.Sprintf("#!/bin/sh\n# no exec: the server is this script's child\n%q demo-app\n", app), 0o755)
	files := activationSockets(t, p)
	defer func() { // the test keeps no copy once the holders have theirs
		for _, f := range files {
			f.Close()
		}
	}()
	h := holder{what: "the socket holder (the master's parent)", record: filepath.Join(p.dir, "holder.signals")}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{h.record, "/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, p.bin,
		"run", "--pidfile", p.pidfile, "--listen", p.addr, "--listen", "unix:" + p.sock,
		"--workers", strconv.Itoa(p.workers), "--ready", "notify",
		"--dir", p.current, "--envfile", filepath.Join(p.current, "app.env"),
		"--stop-timeout", "10s", "--", worker}
	cmd := exec.Command(exe, args...)
	p.prepare(t, cmd)
	cmd.Env = append(cmd.Env, envHelper+"=socket-holder", "LISTEN_FDS="+strconv.Itoa(len(files)))
	cmd.ExtraFiles = files
	cmd.Stdout = nil
	ready, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startManaged(cmd); err != nil {
		t.Fatalf("start the socket holder: %v", err)
	}
	h.pid = cmd.Process.Pid
	p.owner.adopt(h.pid)
	ready.Read(make([]byte, 1)) // EOF once the master is started
	by := holder{what: "an unrelated holder", record: filepath.Join(p.dir, "bystander.signals")}
	by.pid = startHolding(ctx, t, p, files, by.record)
	p.waitReady(ctx, t)
	if pr, err := readProc(p.masterPID(t)); err != nil || pr.ppid != h.pid {
		t.Fatalf("the master's parent is %d (%v), want the socket holder %d", pr.ppid, err, h.pid)
	}
	return p, []holder{h, by}
}

// activationSockets binds the peer's TCP and unix listeners, as systemd
// does for a .socket unit, and returns them as files (p.addr is the TCP
// one's address) for the caller to hand on and close.
func activationSockets(t *testing.T, p *peer) []*os.File {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = tcp.Addr().String()
	unix, err := net.ListenUnix("unix", &net.UnixAddr{Name: p.sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	unix.SetUnlinkOnClose(false) // the service's file now
	var files []*os.File
	for _, l := range []interface{ File() (*os.File, error) }{tcp.(*net.TCPListener), unix} {
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	tcp.Close()
	unix.Close()
	return files
}

// startHolding starts a witness (a re-executed test binary that records
// every signal it gets in record) holding files, the peer's listening
// sockets, and returns its pid once it is ready.
func startHolding(ctx context.Context, t *testing.T, p *peer, files []*os.File, record string) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := execCommand(ctx, exe, record)
	cmd.Env = append(os.Environ(), envHelper+"=witness", p.owner.marker)
	cmd.ExtraFiles = files
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startManaged(cmd); err != nil {
		t.Fatal(err)
	}
	p.owner.adopt(cmd.Process.Pid)
	stdout.Read(make([]byte, 1)) // the witness closes stdout once ready
	return cmd.Process.Pid
}

// heldSockets keeps the socket holder's descriptors reachable: an *os.File
// closes its descriptor when it is garbage collected.
var heldSockets []*os.File

// helperSocketHolder plays systemd's part in socket activation: it holds
// the listening sockets it inherited at fds 3 and up (LISTEN_FDS of them),
// starts the command its arguments after the first name with them (the
// command sets LISTEN_PID itself, as systemd's child does before exec),
// stays its parent and reaps it, and records every signal it receives in
// the file its first argument names, as witness does. It closes stdout once
// the command has started.
func helperSocketHolder(args []string) int {
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if len(args) < 2 || err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "socket-holder: want LISTEN_FDS sockets at fds 3.., a record file and a command")
		return 2
	}
	rec, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "socket-holder:", err)
		return 1
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT)
	for i := range n {
		heldSockets = append(heldSockets, os.NewFile(uintptr(3+i), "listener "+strconv.Itoa(i)))
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.ExtraFiles = heldSockets
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, envHelper+"=") })
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "socket-holder:", err)
		return 1
	}
	go cmd.Wait()
	os.Stdout.Close() // started
	for sig := range sigs {
		fmt.Fprintln(rec, strings.ToUpper(sig.String()))
		rec.Sync()
	}
	return 0
}
