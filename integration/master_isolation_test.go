package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMasterWorkerIsolation runs a real `baton run` whose worker is a shell
// script that runs its server (sleep) without exec, so the server is the
// worker's child, and hands baton an extra open file without close-on-exec
// (a pipe, a log file: whatever the service manager or a shell leaked).
//   - The worker must not have that file open: only the listeners reach it.
//   - Each worker leads a process group of its own, and baton signals the
//     group: after QUIT, when the master has exited, neither the worker nor
//     its child is left, and nothing holds the listening socket.
func TestMasterWorkerIsolation(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	leak := filepath.Join(dir, "inherited-by-baton.log")
	f, err := os.Create(leak)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	worker := filepath.Join(dir, "worker.sh")
	// No exec: sh stays the worker and sleep is its child, holding fd 3.
	writeFile(t, worker, "#!/bin/sh\n/bin/sleep 300\necho worker done\n", 0o755)
	pidfile := filepath.Join(dir, "m.pid")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))

	b := &batonProc{args: []string{"run", "--pidfile", pidfile, "--listen", addr, "--workers", "2",
		"--ready", "delay:100ms", "--stop-timeout", "5s", "--", worker}}
	o := ownerOf(t)
	b.cmd = execCommand(ctx, batonBin, b.args...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.err
	b.cmd.Env = append(os.Environ(), o.marker)
	// The file lands at fd 10 in baton, above where its listener (fd 3)
	// goes in a worker, so that dup2 cannot hide a leak.
	b.cmd.ExtraFiles = []*os.File{nil, nil, nil, nil, nil, nil, nil, f}
	b.start = time.Now()
	b.done = make(chan struct{})
	waited, err := startManaged(b.cmd)
	if err != nil {
		t.Fatal(err)
	}
	o.adopt(b.cmd.Process.Pid)
	go func() {
		b.waitErr = <-waited
		close(b.done)
	}()
	t.Cleanup(func() {
		if b.result == nil {
			b.kill(t)
		}
	})
	master := b.pid()

	// The workers, and the server each one runs.
	var workers, servers []proc
	mustWait(ctx, t, 20*time.Second, "two workers, each with its server", func() (bool, error) {
		workers, servers = nil, nil
		table := allProcs()
		for _, p := range descendants(table, master) {
			switch {
			case p.ppid == master && strings.Contains(p.cmdline, worker):
				workers = append(workers, p)
			case strings.HasPrefix(p.cmdline, "/bin/sleep 300"):
				servers = append(servers, p)
			}
		}
		return len(workers) == 2 && len(servers) == 2, nil
	})
	lnIno := socketInode(t, master, addr)
	for _, p := range append(append([]proc{}, workers...), servers...) {
		if fd, ok := openFile(p.pid, leak); ok {
			t.Errorf("%d (%s) has %s open at fd %s: baton passed on a file it inherited", p.pid, p.cmdline, leak, fd)
		}
		if !initdHoldsSocket(p.pid, lnIno) {
			t.Errorf("%d (%s) does not hold the listener (inode %d)", p.pid, p.cmdline, lnIno)
		}
	}
	for _, w := range workers {
		if w.pgid != w.pid {
			t.Errorf("worker %d is in process group %d, not a group of its own", w.pid, w.pgid)
		}
	}

	sendSignal(t, master, syscall.SIGQUIT)
	r := b.wait(t)
	if r.Code != 0 {
		t.Errorf("master exit %d after QUIT", r.Code)
	}
	for _, p := range append(workers, servers...) {
		if alive(p.pid) {
			t.Errorf("%d (%s) is still alive after the master stopped", p.pid, p.cmdline)
		}
	}
	for _, p := range descendants(allProcs(), os.Getpid()) {
		if !p.zombie() && initdHoldsSocket(p.pid, lnIno) {
			t.Errorf("%d (%s) still holds the listener after the master stopped", p.pid, p.cmdline)
		}
	}
}

// socketInode is the inode of the listening TCP socket on addr's port
// (/proc/net/tcp{,6}) that pid holds.
func socketInode(t testing.TB, pid int, addr string) uint64 {
	t.Helper()
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // LISTEN
				continue
			}
			if hexPort(f[1]) != addr[strings.LastIndexByte(addr, ':')+1:] {
				continue
			}
			ino, err := strconv.ParseUint(f[9], 10, 64)
			if err == nil && initdHoldsSocket(pid, ino) {
				return ino
			}
		}
	}
	t.Fatalf("master %d holds no listening socket on %s", pid, addr)
	return 0
}

// hexPort turns /proc/net/tcp's "0100007F:1F90" into "8080".
func hexPort(local string) string {
	_, h, _ := strings.Cut(local, ":")
	n, _ := strconv.ParseUint(h, 16, 16)
	return strconv.FormatUint(n, 10)
}

// openFile reports whether pid has path open, and at which fd.
func openFile(pid int, path string) (string, bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, _ := os.ReadDir(dir)
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && link == path {
			return fd.Name(), true
		}
	}
	return "", false
}
