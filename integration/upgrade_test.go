package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// verifyFor is the --verify-for of the scenarios: long enough that the
// checks run against the new generation alone, short enough for the suite.
const verifyFor = "300ms"

// upgradeArgs returns `upgrade VERB --pidfile P --check URL` plus extra.
func (p *peer) upgradeArgs(verb string, extra ...string) []string {
	args := []string{"upgrade", verb, "--pidfile", p.pidfile, "--check", p.check()}
	if verb == "start" {
		args = append(args, "--verify-for", verifyFor, "--spawn-timeout", "30s", "--drain-timeout", "30s")
	}
	return append(args, extra...)
}

// upgrade runs `baton upgrade VERB` against p.
func (p *peer) upgrade(ctx context.Context, t testing.TB, verb string, extra ...string) cmdResult {
	t.Helper()
	return batonCmd(ctx, t, p.upgradeArgs(verb, extra...)...)
}

// statusReport is the part of `baton upgrade status --json` the tests read.
type statusReport struct {
	State      string        `json:"state"`
	Flavor     string        `json:"flavor"`
	Old        *statusMaster `json:"old"`
	New        *statusMaster `json:"new"`
	LockHolder int           `json:"lock_holder"`
	Advice     string        `json:"advice"`
	Error      string        `json:"error"`
}

type statusMaster struct {
	Identity struct {
		PID int `json:"pid"`
	} `json:"identity"`
	Workers []int `json:"workers"`
}

// status runs `baton upgrade status --json` and decodes it.
func (p *peer) status(ctx context.Context, t testing.TB) (statusReport, cmdResult) {
	t.Helper()
	r := batonCmd(ctx, t, "upgrade", "status", "--pidfile", p.pidfile, "--json")
	var s statusReport
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Errorf("upgrade status --json: %v\n%s", err, r.Stdout)
	}
	return s, r
}

// pendingPID reads the pid of a new master that is not committed yet
// (gunicorn's <pidfile>.2, else the pid file).
func (p *peer) pendingPID(t testing.TB) int {
	t.Helper()
	pid, err := readPid(p.pidfile + dialects[p.flavor].pendingSuffix)
	if err != nil {
		t.Fatalf("new master: %v", err)
	}
	p.owner.adopt(pid)
	return pid
}

// wantParked checks the state `upgrade start` without --commit leaves: the
// old master alive with no workers, named by its aside pid file; a new
// master, the old one's child, with all its workers, named by the (pending)
// pid file. It returns the new master's pid.
func (p *peer) wantParked(t testing.TB, old int) int {
	t.Helper()
	d := dialects[p.flavor]
	newPID := p.pendingPID(t)
	if newPID == old {
		t.Fatalf("pid file%s still names the old master %d", d.pendingSuffix, old)
	}
	if pid, err := readPid(p.pidfile + d.oldSuffix); err != nil || pid != old {
		t.Errorf("pid file%s: %d %v, want the old master %d", d.oldSuffix, pid, err, old)
	}
	if !alive(old) {
		t.Errorf("old master %d is gone; it should be parked until commit", old)
	} else if n := len(p.workersOf(old)); n != 0 {
		t.Errorf("old master %d still has %d workers after the drain", old, n)
	}
	if pr, err := readProc(newPID); err != nil || pr.zombie() {
		t.Errorf("new master %d is not running: %v", newPID, err)
	} else if pr.ppid != old {
		t.Errorf("new master %d has parent %d, want the old master %d", newPID, pr.ppid, old)
	}
	if n := len(p.workersOf(newPID)); n != p.workers {
		t.Errorf("new master %d has %d workers, want %d", newPID, n, p.workers)
	}
	return newPID
}

// finish stops the load and checks the end state of a scenario: no failed
// request, every version in saw answered some, want answers now, the pid
// files name master alone, the unix socket file still serves, and /health
// is fine.
func (p *peer) finish(ctx context.Context, t *testing.T, tr *traffic, want string, master int, saw ...string) {
	t.Helper()
	tr.progress(ctx, t, 10)
	res := tr.stop(t)
	assertNoFailures(t, res...)
	assertSawVersions(t, res, saw...)
	p.wantServing(ctx, t, want)
	p.wantPidfiles(t, master)
	p.wantSocket(ctx, t)
	p.wantHealthy(ctx, t)
	recordFigures(t, res)
}

// scenario is one test run against a fresh peer of every flavor under load.
type scenario struct {
	name string
	opts peerOptions
	// skip, if set, says why the scenario does not apply to a flavor.
	skip func(f flavor) string
	run  func(ctx context.Context, t *testing.T, p *peer, tr *traffic)
}

// runScenarios runs each scenario for each flavor as
// TEST/FLAVOR/SCENARIO, starting the peer and the load first.
func runScenarios(t *testing.T, scenarios []scenario) {
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel() // flavors share nothing; -parallel (GOMAXPROCS) bounds the load
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					if sc.skip != nil {
						if why := sc.skip(f); why != "" {
							t.Skip(why)
						}
					}
					p := startPeer(t, f, sc.opts)
					ctx := testContext(t)
					tr := startLoad(ctx, t, p)
					tr.progress(ctx, t, 10)
					sc.run(ctx, t, p, tr)
				})
			}
		})
	}
}

// upgradeCycles is how many consecutive upgrades TestUpgrade/*/cycles runs.
func upgradeCycles() int {
	if testing.Short() {
		return 5
	}
	return 20
}

// TestUpgrade runs `baton upgrade` against each real master under load:
// start + commit, start + rollback, start --commit, many cycles in a row,
// and a replaced binary serving after commit. No request may fail.
func TestUpgrade(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "start+commit", run: func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
			old := p.masterPID(t)
			// A 3-second request in flight on an old worker: the drain
			// must let it finish.
			slow, _ := p.slowRequest(ctx, "v1")
			tr.progress(ctx, t, 5)
			p.release(t, "v2")
			p.upgrade(ctx, t, "start").wantCode(t, 0)
			if err := <-slow; err != nil {
				t.Errorf("request in flight during the upgrade: %v", err)
			}
			newPID := p.wantParked(t, old)
			p.wantSocket(ctx, t)
			tr.progress(ctx, t, 20)
			p.wantServing(ctx, t, "v2") // the new generation alone
			s, _ := p.status(ctx, t)
			if s.State != "drained" {
				t.Errorf("status after start: state %q, want drained", s.State)
			}
			p.upgrade(ctx, t, "commit").wantCode(t, 0)
			if alive(old) {
				t.Errorf("old master %d still runs after commit", old)
			}
			p.finish(ctx, t, tr, "v2", newPID, "v1", "v2")
		}},
		{name: "start+rollback", run: func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
			old := p.masterPID(t)
			p.release(t, "v2")
			p.upgrade(ctx, t, "start").wantCode(t, 0)
			newPID := p.wantParked(t, old)
			p.wantSocket(ctx, t)
			tr.progress(ctx, t, 20)
			p.upgrade(ctx, t, "rollback").wantCode(t, 0)
			if alive(newPID) {
				t.Errorf("new master %d still runs after rollback", newPID)
			}
			if n := len(p.workersOf(old)); n != p.workers {
				t.Errorf("old master %d has %d workers after rollback, want %d", old, n, p.workers)
			}
			p.finish(ctx, t, tr, "v1", old, "v1", "v2")
		}},
		{name: "start--commit", run: func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
			old := p.masterPID(t)
			p.release(t, "v2")
			p.upgrade(ctx, t, "start", "--commit").wantCode(t, 0)
			newPID := p.masterPID(t)
			if newPID == old || alive(old) {
				t.Errorf("after start --commit the pid file names %d (old %d, alive %v)", newPID, old, alive(old))
			}
			p.finish(ctx, t, tr, "v2", newPID, "v1", "v2")
		}},
		{name: "cycles", run: func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
			n := upgradeCycles()
			seen := map[int]bool{p.masterPID(t): true}
			var master int
			for i := range n {
				v := fmt.Sprintf("v%d", i+2)
				p.release(t, v)
				r := p.upgrade(ctx, t, "start", "--commit", "--verify-for", "0")
				if r.wantCode(t, 0); t.Failed() {
					t.Fatalf("cycle %d failed", i+1)
				}
				master = p.masterPID(t)
				if seen[master] {
					t.Fatalf("cycle %d: pid file names %d, a master seen before", i+1, master)
				}
				seen[master] = true
				p.wantServing(ctx, t, v)
			}
			p.finish(ctx, t, tr, fmt.Sprintf("v%d", n+1), master, "v1", fmt.Sprintf("v%d", n+1))
		}},
		{name: "changed-binary", run: func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
			old := p.masterPID(t)
			isNew := p.replaceBinary(t)
			if err := isNew(old); err == nil {
				t.Fatalf("the old master %d already passes the new-build check", old)
			}
			p.release(t, "v2")
			p.upgrade(ctx, t, "start", "--commit").wantCode(t, 0)
			newPID := p.masterPID(t)
			if err := isNew(newPID); err != nil {
				t.Errorf("new master %d does not run the replaced binary: %v", newPID, err)
			}
			p.finish(ctx, t, tr, "v2", newPID, "v1", "v2")
		}},
	})
}
