package integration

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNginxDrainCapability: whether nginx honours WINCH is read from the
// process, not from baton's journal. A master started by an upgrade baton
// did not drive — the documented manual USR2/WINCH/QUIT, or Debian's
// /etc/init.d/nginx upgrade (USR2, then QUIT to the .oldbin master) — is
// no session leader and its title hides NGINX=, yet it honours WINCH: the
// next `baton upgrade start` must drain it, without the "ignores WINCH"
// warning. A "daemon off" master (started by a shell that exited, as a
// supervisor that is not its parent would) ignores WINCH: baton warns and
// goes on without waiting for a drain that never comes. All under load.
func TestNginxDrainCapability(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   peerOptions
		before func(ctx context.Context, t *testing.T, p *peer)
		warned bool
	}{
		{name: "manual-upgrade-before", before: func(ctx context.Context, t *testing.T, p *peer) {
			p.byHand(ctx, t, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGQUIT)
		}},
		{name: "debian-init-upgrade-before", before: func(ctx context.Context, t *testing.T, p *peer) {
			p.byHand(ctx, t, syscall.SIGUSR2, syscall.SIGQUIT)
		}},
		{name: "daemon-off", opts: peerOptions{DaemonOff: true}, warned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startPeer(t, flavorNginx, tc.opts)
			ctx := testContext(t)
			tr := startLoad(ctx, t, p)
			tr.progress(ctx, t, 10)
			if tc.before != nil {
				tc.before(ctx, t, p)
				tr.progress(ctx, t, 10)
			}
			old := p.masterPID(t)
			p.release(t, "v2")
			r := p.upgrade(ctx, t, "start")
			r.wantCode(t, 0)
			if warned := strings.Contains(r.Stderr, "ignores WINCH"); warned != tc.warned {
				t.Errorf("warned that nginx ignores WINCH: %v, want %v", warned, tc.warned)
			}
			if n := len(p.workersOf(old)); !tc.warned && n != 0 {
				t.Errorf("old master %d has %d workers after the drain", old, n)
			}
			p.upgrade(ctx, t, "commit").wantCode(t, 0)
			p.finish(ctx, t, tr, "v2", p.masterPID(t), "v1", "v2")
		})
	}
}

// byHand upgrades p's nginx to the same release as an operator or Debian's
// init script does, sending sigs in turn: USR2 to the master, then each
// other signal to the old master (at .oldbin), waiting for each to take
// effect. It ends with the new master alone, named by the pid file.
func (p *peer) byHand(ctx context.Context, t *testing.T, sigs ...syscall.Signal) {
	t.Helper()
	old := p.masterPID(t)
	var nu int
	for _, sig := range sigs {
		sendSignal(t, old, sig)
		switch sig {
		case syscall.SIGUSR2:
			mustWait(ctx, t, 30*time.Second, "the new master", func() (bool, error) {
				pid, err := readPid(p.pidfile)
				if err == nil && pid != old && alive(pid) && len(p.workersOf(pid)) == p.workers {
					nu = pid
					return true, nil
				}
				return false, err
			})
			p.owner.adopt(nu)
		case syscall.SIGWINCH:
			mustWait(ctx, t, 30*time.Second, "the old workers to drain", func() (bool, error) {
				return len(p.workersOf(old)) == 0, nil
			})
		case syscall.SIGQUIT:
			mustWait(ctx, t, 30*time.Second, "the old master to exit", func() (bool, error) {
				return !alive(old), nil
			})
		}
	}
	p.wantPidfiles(t, nu)
}
