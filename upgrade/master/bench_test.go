//go:build linux

package master_test

import (
	"syscall"
	"testing"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// BenchmarkUpgrade measures one committed upgrade of a two-worker master:
// USR2, the new generation ready, WINCH and QUIT to the old master, and the
// new one reporting itself sole master.
func BenchmarkUpgrade(b *testing.B) {
	h := newHarness(b, testOpts{Workers: 2}, "")
	h.start()
	cur := h.pid
	b.ResetTimer()
	for range b.N {
		h.signal(cur, syscall.SIGUSR2)
		var nw int
		h.waitFor("new pid file", func() bool {
			nw = pidInFile(b, h.opts.PIDFile)
			return nw != 0 && nw != cur
		})
		h.waitReady(nw)
		h.signal(cur, syscall.SIGWINCH)
		h.signal(cur, syscall.SIGQUIT)
		h.waitStatus(nw, "committed", func(s statusfile.Master) bool { return !s.UpgradePending && s.Ready })
		cur = nw
	}
	b.StopTimer()
	h.signal(cur, syscall.SIGQUIT)
	h.waitGone(cur)
}

// BenchmarkReload measures HUP to the fresh generation ready and the old
// one gone.
func BenchmarkReload(b *testing.B) {
	h := newHarness(b, testOpts{Workers: 2}, "")
	h.start()
	b.ResetTimer()
	for i := range b.N {
		h.signal(h.pid, syscall.SIGHUP)
		h.waitStatus(h.pid, "reloaded", func(s statusfile.Master) bool {
			return s.Ready && s.Generation == i+2 && len(s.Workers) == 2 && s.Workers[0].Generation == i+2
		})
	}
}
