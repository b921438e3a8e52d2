//go:build linux

package procs

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestListeners(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	h := startHelper(t, "listen", helperOpts{}, sock)
	// The helper printed "NETWORK ADDR INODE" per listener, then "child PID".
	type printed struct{ network, addr, inode string }
	var want []printed
	child := 0
	for _, l := range h.lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "child":
			child, _ = strconv.Atoi(f[1])
		case len(f) == 3:
			want = append(want, printed{f[0], f[1], f[2]})
		default:
			t.Fatalf("helper printed %q", l)
		}
	}
	if child == 0 || len(want) != 4 {
		t.Fatalf("helper printed %q", h.lines)
	}
	recordStarted(t, child)

	for _, mode := range []struct {
		name string
		diag bool
	}{
		{"sock_diag", true},
		{"proc", false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			useDiag = mode.diag
			defer func() { useDiag = true }()
			got, err := Listeners(h.cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Listeners = %+v, want %d (the established connection is no listener)", got, len(want))
			}
			wantNet := map[string]string{"tcp4": "tcp", "tcp6": "tcp6", "unix": "unix"}
			for i, w := range want {
				// The helper opened them in order, so their fds ascend.
				g := got[i]
				if g.Network != wantNet[w.network] || g.Addr != w.addr || strconv.FormatUint(g.Inode, 10) != w.inode {
					t.Errorf("listener %d = %+v, want %s %s inode %s", i, g, wantNet[w.network], w.addr, w.inode)
				}
				if i > 0 && g.FD <= got[i-1].FD {
					t.Errorf("listeners not ordered by fd: %+v", got)
				}
			}
			if got[2].Addr != sock || !strings.HasPrefix(got[3].Addr, "@baton-procs-test-") {
				t.Errorf("unix listeners = %q, %q", got[2].Addr, got[3].Addr)
			}

			// The child inherited the 127.0.0.1 listener as fd 3: the same socket,
			// so the same inode.
			inherited, err := Listeners(child)
			if err != nil {
				t.Fatal(err)
			}
			if len(inherited) != 1 || inherited[0].FD != 3 || inherited[0].Inode != got[0].Inode || inherited[0].Addr != got[0].Addr {
				t.Errorf("child's Listeners = %+v, want fd 3 sharing %+v", inherited, got[0])
			}

			// The test process itself holds no listeners.
			mine, err := Listeners(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if len(mine) != 0 {
				t.Errorf("Listeners(self) = %+v, want none", mine)
			}
		})
	}
}

// TestSockets: a process's sockets are its listeners and the rest (the
// helper's established connection); a child that inherited a listener
// holds its inode.
func TestSockets(t *testing.T) {
	h := startHelper(t, "listen", helperOpts{}, filepath.Join(t.TempDir(), "app.sock"))
	child := 0
	for _, l := range h.lines {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "child" {
			child, _ = strconv.Atoi(f[1])
		}
	}
	recordStarted(t, child)
	ls, err := Listeners(h.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	socks, err := Sockets(h.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) <= len(ls) {
		t.Errorf("Sockets = %+v, want more than the %d listeners", socks, len(ls))
	}
	for _, l := range ls {
		if !slices.Contains(socks, Socket{FD: l.FD, Inode: l.Inode}) {
			t.Errorf("Sockets = %+v lacks listener %+v", socks, l)
		}
	}
	if !slices.IsSortedFunc(socks, func(a, b Socket) int { return a.FD - b.FD }) {
		t.Errorf("Sockets not ordered by fd: %+v", socks)
	}
	inherited, err := Sockets(child)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(inherited, Socket{FD: 3, Inode: ls[0].Inode}) {
		t.Errorf("child's Sockets = %+v, want fd 3 holding inode %d", inherited, ls[0].Inode)
	}
	if _, err := Sockets(0); err == nil {
		t.Error("Sockets(0) succeeded")
	}
}
