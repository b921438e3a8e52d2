package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOperatorInterrupt sends `baton upgrade` the signals operators and
// their tools send — Ctrl-C (SIGINT), timeout(1) and systemd (SIGTERM), a
// closed terminal (SIGHUP) — at each point of an upgrade, under load:
// before USR2 nothing is signalled (exit 2); after it the upgrade rolls
// back (exit 1) with the old generation serving and the pid files clean; a
// commit under way finishes (exit 0); a second signal during the rollback
// stops at once (exit 4) naming the command that finishes, which then does.
func TestOperatorInterrupt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		verb  string // "" is start
		extra []string
		at    string // progress text after which the signals are sent
		sigs  []syscall.Signal
		code  int
	}{
		{name: "preflight/SIGTERM", at: "", sigs: []syscall.Signal{syscall.SIGTERM}, code: 2},
		{name: "spawning/SIGINT", at: "spawn: sent", sigs: []syscall.Signal{syscall.SIGINT}, code: 1},
		{name: "verifying/SIGTERM", extra: []string{"--verify-for", "20s"}, at: "parked", sigs: []syscall.Signal{syscall.SIGTERM}, code: 1},
		{name: "verifying/SIGHUP", extra: []string{"--verify-for", "20s"}, at: "parked", sigs: []syscall.Signal{syscall.SIGHUP}, code: 1},
		{name: "rolling-back/SIGTERM-twice", extra: []string{"--verify-for", "20s"}, at: "parked", sigs: []syscall.Signal{syscall.SIGTERM, syscall.SIGTERM}, code: 4},
		{name: "committing/SIGTERM", verb: "commit", at: "commit: sent", sigs: []syscall.Signal{syscall.SIGTERM}, code: 0},
	} {
		t.Run(strings.ReplaceAll(tc.name, "/", "-"), func(t *testing.T) {
			t.Parallel()
			p := startPeer(t, flavorNginx, peerOptions{})
			ctx := testContext(t)
			tr := startLoad(ctx, t, p)
			tr.progress(ctx, t, 10)
			old := p.masterPID(t)
			before := p.snapshot(t)
			p.release(t, "v2")
			marker := filepath.Join(p.dir, "preflight-runs")
			if tc.at == "" {
				tc.extra = []string{"--preflight", "touch " + marker + "; sleep 20"}
			}
			args := p.upgradeArgs("start", append(tc.extra, "--json")...)
			if tc.verb != "" {
				p.upgrade(ctx, t, "start").wantCode(t, 0)
				args = p.upgradeArgs(tc.verb, append(tc.extra, "--json")...)
			}
			b := batonStart(ctx, t, args...)
			if tc.at == "" {
				mustWait(ctx, t, 30*time.Second, "the preflight command to run", func() (bool, error) {
					_, err := os.Stat(marker)
					return err == nil, nil
				})
			} else if !b.waitStderr(ctx, t, tc.at) {
				b.wait(t)
				t.Fatalf("baton ended before %q", tc.at)
			}
			for i, sig := range tc.sigs {
				if i > 0 {
					// The second one lands while the rollback waits for
					// the new master to finish a 3-second request.
					slow, _ := p.slowRequest(ctx, "v2")
					defer func() { <-slow }()
					b.waitStderr(ctx, t, "stopping new master")
				}
				if err := b.cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			}
			r := b.wait(t)
			r.wantCode(t, tc.code)
			var rep struct {
				Interrupted []string `json:"interrupted"`
				Advice      string   `json:"advice"`
			}
			if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
				t.Errorf("--json: %v", err)
			}
			late := tc.code == 0 && len(rep.Interrupted) == 0 && strings.Contains(r.Stderr, "had finished; ignored") && !strings.Contains(r.Stderr, "aborts safely")
			// A commit can finish between its QUIT and the signal (the old
			// master, drained, exits at once): then the signal interrupted
			// nothing, and stderr and --json must both say so.
			if !late && (len(rep.Interrupted) != len(tc.sigs) || !strings.Contains(r.Stderr, "aborts safely")) {
				t.Errorf("the interrupt is not reported: %q in --json; stderr:\n%s", rep.Interrupted, r.Stderr)
			}
			switch tc.code {
			case 2:
				p.wantUntouched(t, before)
				p.finish(ctx, t, tr, "v1", old, "v1")
			case 1:
				p.wantRolledBack(ctx, t, old)
				p.finish(ctx, t, tr, "v1", old, "v1")
			case 4:
				if !strings.Contains(rep.Advice, "baton upgrade rollback --pidfile "+p.pidfile) {
					t.Errorf("advice %q does not name the command that finishes", rep.Advice)
				}
				p.upgrade(ctx, t, "rollback").wantCode(t, 0)
				p.wantRolledBack(ctx, t, old)
				p.finish(ctx, t, tr, "v1", old, "v1", "v2")
			case 0:
				if master := p.masterPID(t); master == old || alive(old) {
					t.Errorf("the commit did not finish: the pid file names %d, old master %d alive: %v", master, old, alive(old))
				}
				p.finish(ctx, t, tr, "v2", p.masterPID(t), "v1", "v2")
			}
		})
	}
}
