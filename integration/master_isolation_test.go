package integration

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// socketInode is the inode of the listening socket bound to addr that pid
// holds. It asks the sockets themselves: each of pid's socket descriptors
// is copied into the test (pidfd_getfd(2)) for getsockname and
// SO_ACCEPTCONN. (Not /proc/net/tcp: a table read in several read(2)s
// while other tests open and close sockets can skip a line.)
func socketInode(t testing.TB, pid int, addr string) uint64 {
	t.Helper()
	want, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of %d: %v", pid, err)
	}
	defer unix.Close(pidfd)
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		ino, ok := strings.CutPrefix(link, "socket:[")
		if err != nil || !ok {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if boundListener(pidfd, fd, want) {
			n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64)
			if err != nil {
				t.Fatalf("%s/%d: %q", dir, fd, link)
			}
			return n
		}
	}
	t.Fatalf("master %d holds no listening socket on %s", pid, addr)
	return 0
}

// boundListener reports whether descriptor fd of the process pidfd refers
// to is a listening IPv4 socket bound to want.
func boundListener(pidfd, fd int, want netip.AddrPort) bool {
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return false // closed meanwhile: not the master's listener
	}
	defer unix.Close(dup)
	if on, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on != 1 {
		return false
	}
	sa, err := unix.Getsockname(dup)
	in4, ok := sa.(*unix.SockaddrInet4)
	return err == nil && ok && netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)) == want
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
