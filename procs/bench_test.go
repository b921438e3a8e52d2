//go:build linux

package procs

import (
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkInfo(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := Info(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStartTime(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := StartTime(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChildren(b *testing.B) {
	pid := os.Getppid()
	for b.Loop() {
		if _, err := Children(pid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListeners reads the listeners of a helper holding tcp, tcp6 and
// unix listeners plus an established connection, through sock_diag and
// through the /proc tables (whose cost grows with the machine's socket count).
func BenchmarkListeners(b *testing.B) {
	h := startHelper(b, "listen", helperOpts{}, filepath.Join(b.TempDir(), "s.sock"))
	for _, mode := range []struct {
		name string
		diag bool
	}{{"sock_diag", true}, {"proc", false}} {
		b.Run(mode.name, func(b *testing.B) {
			useDiag = mode.diag
			defer func() { useDiag = true }()
			for b.Loop() {
				ls, err := Listeners(h.cmd.Process.Pid)
				if err != nil || len(ls) != 4 {
					b.Fatal(ls, err)
				}
			}
		})
	}
}

func BenchmarkOpenSignalClose(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		p, err := Open(pid)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Signal(0); err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}

// BenchmarkSocketHolders scans every process's descriptors for one socket:
// its cost grows with the machine's process and descriptor counts.
func BenchmarkSocketHolders(b *testing.B) {
	h := startHelper(b, "listen", helperOpts{}, filepath.Join(b.TempDir(), "s.sock"))
	ls, err := Listeners(h.cmd.Process.Pid)
	if err != nil || len(ls) == 0 {
		b.Fatal(ls, err)
	}
	for b.Loop() {
		ids, err := SocketHolders([]uint64{ls[0].Inode})
		if err != nil || len(ids) != 2 {
			b.Fatal(ids, err)
		}
	}
}
