package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFleetRollout rolls releases out across the fleet with the README's
// playbook (serial 2): see fleet_test.go. The scenarios run in order on one
// fleet, each from where the one before left it: v2 everywhere; v3 broken on
// h3 (batch h3, h4 rolled back, h5, h6 untouched); v3 fixed, the controller
// killed in batch h3, h4; v3 once more, to the end.
func TestFleetRollout(t *testing.T) {
	t.Parallel() // long and self-contained: see doc.go, Time
	requireFleetTools(t)
	ctx := testContext(t)
	f := newFleet(ctx, t)
	var pending map[string]int
	ok := t.Run("all", func(t *testing.T) { fleetAll(ctx, t, f) }) &&
		t.Run("broken", func(t *testing.T) { fleetBroken(ctx, t, f) }) &&
		t.Run("check-mode", func(t *testing.T) { fleetCheckMode(ctx, t, f) }) &&
		t.Run("interrupted", func(t *testing.T) { pending = fleetInterrupted(ctx, t, f) }) &&
		t.Run("rerun", func(t *testing.T) { fleetRerun(ctx, t, f, pending) })
	if !ok {
		t.Error("a scenario failed; the later ones did not run")
	}
	for _, h := range f.hosts {
		c := h.load.stop(t)
		t.Logf("load on %s: %d ok, %d failed, %d keep-alive races; versions %s; %s", h.name, c.OK, c.Failed, c.Races, formatVersions(c.Versions), cpuTime(h.load.cmd))
		if c.OK == 0 || !c.Final {
			t.Errorf("load on %s: %d requests answered (final report %v): no traffic, no proof", h.name, c.OK, c.Final)
		}
		if c.Failed != 0 {
			t.Errorf("load on %s: %d requests failed: %v; samples: %s", h.name, c.Failed, c.Failures, strings.Join(c.Samples, " | "))
		}
	}
}

// rollout is the extra vars of a run: release v, the hosts whose release is
// broken, and the role's settings for this fleet (extra vars, since the
// README's playbook sets its own for nginx).
func (f *fleet) rollout(v string, broken []string, more map[string]any) map[string]any {
	if broken == nil {
		broken = []string{}
	}
	m := map[string]any{
		"fleet_version":               v,
		"fleet_broken":                broken,
		"baton_rollout_pidfile":       "{{ fleet_dir }}/baton.pid",
		"baton_rollout_baton":         batonBin,
		"baton_rollout_checks":        []string{fmt.Sprintf("http://127.0.0.1:%d/health", fleetPort)},
		"baton_rollout_preflight":     "",
		"baton_rollout_packages":      []string{},
		"baton_rollout_verify_for":    "1s",
		"baton_rollout_release_tasks": filepath.Join(f.dir, "release.yml"),
	}
	for k, val := range more {
		m[k] = val
	}
	return m
}

// settled checks that a host is settled on one master serving v: the pid file
// names a live master other than (or, with same, equal to) before, no
// .oldbin, and answers from v.
func (f *fleet) settled(t *testing.T, name string, v string, before int, same bool) {
	t.Helper()
	h := f.host(name)
	pid := h.master()
	switch {
	case pid == 0 || !alive(pid):
		t.Errorf("%s: pid file names %d, not a live master", name, pid)
	case same && pid != before:
		t.Errorf("%s: master %d, want the same master %d", name, pid, before)
	case !same && pid == before:
		t.Errorf("%s: master %d is still the one before the rollout", name, pid)
	}
	if _, err := os.Stat(h.pidfile + ".oldbin"); err == nil {
		t.Errorf("%s: %s.oldbin left behind", name, filepath.Base(h.pidfile))
	}
	mustWait(context.Background(), t, 10*time.Second, name+" serving "+v, func() (bool, error) {
		got, err := h.serving()
		return err == nil && got == v, fmt.Errorf("serving %q: %v", got, err)
	})
}

// runsRelease checks whether host name's master runs the baton binary now
// at bin/baton (want true) or an older one (want false).
func (f *fleet) runsRelease(t *testing.T, name string, want bool) {
	t.Helper()
	h := f.host(name)
	pid := h.master()
	exe, err := exeInode(pid)
	fi, serr := os.Stat(filepath.Join(h.dir, "bin", "baton"))
	if err != nil || serr != nil {
		t.Errorf("%s: master %d exe: %v, %v", name, pid, err, serr)
		return
	}
	if got := exe == inodeOf(fi); got != want {
		t.Errorf("%s: master %d runs bin/baton as installed: %v, want %v", name, pid, got, want)
	}
}

func fleetAll(ctx context.Context, t *testing.T, f *fleet) {
	before := f.masters()
	out := f.playbook(ctx, t, 0, f.rollout("v2", nil, nil))
	for _, h := range f.hosts {
		f.settled(t, h.name, "v2", before[h.name], false)
		f.runsRelease(t, h.name, true)
	}
	for name, changed := range changedCounts(out) {
		if changed == "0" {
			t.Errorf("%s: changed=0 in the recap of a rollout that upgraded it", name)
		}
	}
	wantOutput(t, out, "h1  upgraded: master", "h6  upgraded: master")
}

func fleetBroken(ctx context.Context, t *testing.T, f *fleet) {
	before := f.masters()
	binBefore := map[string]uint64{}
	for _, name := range []string{"h5", "h6"} {
		fi, err := os.Stat(filepath.Join(f.host(name).dir, "bin", "baton"))
		if err != nil {
			t.Fatal(err)
		}
		binBefore[name] = inodeOf(fi)
	}
	out := f.playbook(ctx, t, 2, f.rollout("v3", []string{"h3"}, nil))
	for _, name := range []string{"h1", "h2"} {
		f.settled(t, name, "v3", before[name], false)
		f.runsRelease(t, name, true)
	}
	for _, name := range []string{"h3", "h4"} {
		f.settled(t, name, "v2", before[name], true)
		f.runsRelease(t, name, false) // the release is on disk, the old master serves
	}
	for _, name := range []string{"h5", "h6"} {
		f.settled(t, name, "v2", before[name], true)
		fi, err := os.Stat(filepath.Join(f.host(name).dir, "bin", "baton"))
		if err != nil || inodeOf(fi) != binBefore[name] {
			t.Errorf("%s: bin/baton changed in a batch the rollout never reached (%v)", name, err)
		}
	}
	wantOutput(t, out,
		"rollout stopped, batch h3, h4 rolled back: h3: baton upgrade start exited 1 (rolled back, the old generation is serving): failed and rolled back: verify: check http://127.0.0.1:8080/health: status 500",
		"h3  rolled back: master", "check http://127.0.0.1:8080/health: status 500",
		"h4  rolled back: master", "h5  untouched", "h6  untouched", "h1  upgraded: master")
}

// fleetCheckMode runs the module ad hoc in check mode: on h3 (its binary
// replaced by the broken release, rolled back) start is due and reported
// as changed; on h5 (untouched) nothing is due. Nothing changes.
func fleetCheckMode(ctx context.Context, t *testing.T, f *fleet) {
	before := f.masters()
	args, _ := json.Marshal(map[string]any{"pidfile": "{{ fleet_dir }}/baton.pid", "command": "start", "baton": batonBin})
	cmd := exec.CommandContext(ctx, "/usr/bin/ansible", "h3,h5", "-i", filepath.Join(f.dir, "inventory.json"),
		"--check", "-o", "-m", "batonhq.baton.baton_upgrade", "-a", string(args))
	cmd.Dir, cmd.Env = f.dir, f.ansibleEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("ansible --check: %v\n%s", err, out)
	}
	results := map[string]map[string]any{}
	for _, line := range strings.Split(out, "\n") {
		host, rest, ok := strings.Cut(line, " | ")
		_, js, ok2 := strings.Cut(rest, " => ")
		if !ok || !ok2 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("%s: %v: %s", host, err, js)
		}
		results[host] = r
	}
	want := map[string]map[string]any{
		"h3": {"changed": true, "did": "started", "binary_replaced": true, "state": "rolled-back"},
		"h5": {"changed": false, "did": "nothing", "binary_replaced": false},
	}
	for host, w := range want {
		for k, v := range w {
			if got := results[host][k]; got != v {
				t.Errorf("%s in check mode: %s = %v, want %v\n%s", host, k, got, v, out)
			}
		}
	}
	for _, name := range []string{"h3", "h5"} {
		f.settled(t, name, "v2", before[name], true)
	}
}

// fleetInterrupted runs the playbook again with the release fixed and kills
// the controller while the second batch's check runs (h3 and h4 started,
// nothing committed); the first batch, upgraded before, is left unchanged.
// It returns the masters h3 and h4 were started to.
func fleetInterrupted(ctx context.Context, t *testing.T, f *fleet) map[string]int {
	before := f.masters()
	marker, proceed := filepath.Join(f.dir, "checking"), filepath.Join(f.dir, "proceed")
	hang := fmt.Sprintf(`case " $BATON_BATCH " in *" h3 "*) touch %s; while [ ! -e %s ]; do sleep 0.1; done;; esac`, marker, proceed)
	p := f.startPlaybook(t, f.rollout("v3", nil, map[string]any{"baton_rollout_batch_check": hang}))
	mustWait(ctx, t, 3*time.Minute, "the second batch's check to run", func() (bool, error) {
		select {
		case <-p.waited:
			t.Fatalf("ansible-playbook ended before the second batch's check:\n%s", p.out.String())
		default:
		}
		_, err := os.Stat(marker)
		return err == nil, err
	})
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.waited
	writeFile(t, proceed, "", 0o644) // a check the kill missed ends too
	for _, name := range []string{"h1", "h2"} {
		f.settled(t, name, "v3", before[name], true)
	}
	for _, name := range []string{"h5", "h6"} {
		f.settled(t, name, "v2", before[name], true)
	}
	pending := map[string]int{}
	for _, name := range []string{"h3", "h4"} {
		h := f.host(name)
		st := batonCmd(ctx, t, "upgrade", "status", "--pidfile", h.pidfile, "--json")
		var rep struct {
			State string `json:"state"`
			New   *struct {
				ID struct {
					PID int `json:"pid"`
				} `json:"identity"`
			} `json:"new"`
		}
		if err := json.Unmarshal([]byte(st.Stdout), &rep); err != nil || rep.New == nil {
			t.Fatalf("%s status after the kill: %v\n%s", name, err, st.Stdout)
		}
		if rep.State != "drained" {
			t.Errorf("%s after the controller was killed: state %q, want drained (started, not committed)", name, rep.State)
		}
		pending[name] = rep.New.ID.PID
	}
	return pending
}

// fleetRerun runs the playbook once more: it continues where the rollout
// stopped. The first batch is unchanged, the second (killed mid-batch)
// settles from baton's journal on each host, committing the new masters
// started before the kill, and the third is upgraded.
func fleetRerun(ctx context.Context, t *testing.T, f *fleet, pending map[string]int) {
	before := f.masters()
	out := f.playbook(ctx, t, 0, f.rollout("v3", nil, nil))
	changed := changedCounts(out)
	for _, name := range []string{"h1", "h2"} {
		f.settled(t, name, "v3", before[name], true)
		if changed[name] != "0" {
			t.Errorf("%s: changed=%s in the recap, want 0: it was upgraded already\n%s", name, changed[name], recap(out))
		}
	}
	// The pid files of h3 and h4 already named the new masters started
	// before the kill: they are committed, not started again.
	for name, pid := range pending {
		f.settled(t, name, "v3", pid, true)
		f.runsRelease(t, name, true)
	}
	for _, name := range []string{"h5", "h6"} {
		f.settled(t, name, "v3", before[name], false)
		f.runsRelease(t, name, true)
	}
	wantOutput(t, out, "h1  unchanged: master", "h3  upgraded: master", "h6  upgraded: master")
}

// wantOutput fails the test unless the playbook's output holds every string.
func wantOutput(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the playbook's output lacks %q:\n%s", w, out)
		}
	}
}
