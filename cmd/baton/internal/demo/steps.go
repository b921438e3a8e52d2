package demo

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// step is one row of the demo's script: a release to roll out, the baton
// command that rolls it out, and what must be true afterwards.
type step struct {
	name    string   // as the progress and the report show it
	release string   // the version demo.env names before the step; "" keeps it
	broken  bool     // the release's /health answers 500
	args    []string // baton's arguments, expanded by demo.expand
	exit    int      // baton's exit status when the step does what it should
	exitFor string   // what that status means, for the message when it differs
	// serves is the only version that may answer after the step, with the
	// pid file naming the serving master and no .oldbin; "" checks neither.
	serves string
	// check judges what the demo saw once the exit status and serves hold,
	// and returns the step's note: what it found, or what is wrong.
	check  func(d *demo, seen observed) (note string, ok bool)
	failed string // the demo's error when the step fails

	steady string        // the load line printed after the step; "" for none
	settle time.Duration // how long the load runs before that line
}

// Arguments shared by the rows.
var (
	startArgs  = []string{"upgrade", "start", "--pidfile", "$DIR/" + pidName, "--check", "http://$ADDR/health"}
	commitArgs = []string{"upgrade", "commit", "--pidfile", "$DIR/" + pidName}
)

// script is the demo after the first master is up and under load. baton's
// exit statuses: 0 done, 1 failed and rolled back.
var script = []step{
	{
		name: "upgrade start → v2", release: "v2", args: startArgs,
		exit: 0, check: upgraded, failed: "upgrade to v2 failed",
	},
	{
		name: "upgrade commit", args: commitArgs,
		exit: 0, serves: "v2", check: committed, failed: "commit failed",
		steady: "steady load on v2", settle: 500 * time.Millisecond,
	},
	{
		name: "upgrade start → v3 (broken: /health 500)", release: "v3", broken: true, args: startArgs,
		exit: 1, exitFor: "rolled back", serves: "v2", check: rolledBack, failed: "rollback of v3 failed",
		steady: "steady load after the rollback", settle: 500 * time.Millisecond,
	},
}

// upgraded: the pid file names a new master and .oldbin the one that served.
func upgraded(d *demo, seen observed) (string, bool) {
	if seen.oldbin != d.serving || seen.current == d.serving || seen.current == 0 {
		return fmt.Sprintf("pid file %d and .oldbin %d, want a new master and %d parked", seen.current, seen.oldbin, d.serving), false
	}
	d.parked, d.serving = d.serving, seen.current
	return fmt.Sprintf("new master %d serves v2, old master %d parked without workers", d.serving, d.parked), true
}

// committed: the parked master is gone (serves checked the rest).
func committed(d *demo, _ observed) (string, bool) {
	return fmt.Sprintf("old master %d gone; v2 serves alone", d.parked), true
}

// rolledBack: baton undid the broken release by itself (exit and serves
// checked that).
func rolledBack(d *demo, _ observed) (string, bool) {
	d.rep.RolledBack = true
	return fmt.Sprintf("exit 1: health check failed, rolled back; v2 (master %d) serves", d.serving), true
}

// observed is what the demo saw after a step's command.
type observed struct {
	current, oldbin int            // the pid file and .oldbin; 0 for none
	versions        map[string]int // versions that answered (with serves)
	probeErr        error
}

// step runs one row of the script.
func (d *demo) step(ctx context.Context, s step) error {
	if s.release != "" {
		if err := d.writeRelease(s.release, s.broken); err != nil {
			return err
		}
	}
	code, st := d.baton(ctx, s.name, d.expand(s.args)...)
	// Masters the step started are children of the one that served before;
	// know them before that one may exit and they are reparented. A failed
	// scan is retried by the next one, and cleanup reports its own.
	_ = d.tracked.scan()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	seen := d.observe(ctx, s.serves != "")
	note, ok := d.verdict(s, code, seen)
	if !ok {
		d.fail(st, note)
		return fmt.Errorf("demo: %s", s.failed)
	}
	d.pass(st, note)
	if s.steady == "" {
		return nil
	}
	return d.steady(ctx, s.steady, s.settle)
}

// observe reads the pid files and, with probe, which versions answer. What
// it probed is the report's final state: the last step's observation stays.
func (d *demo) observe(ctx context.Context, probe bool) observed {
	var seen observed
	seen.current, seen.oldbin = d.pids()
	if probe {
		seen.versions, seen.probeErr = d.probe(ctx, 20)
		d.rep.FinalMaster = seen.current
		d.rep.Final = strings.Join(slices.Sorted(maps.Keys(seen.versions)), ",")
	}
	return seen
}

// verdict checks the exit status and the settled state s asks for, then
// the row's own check; it returns the note for the report.
func (d *demo) verdict(s step, code int, seen observed) (string, bool) {
	want := fmt.Sprint(s.exit)
	if s.exitFor != "" {
		want += " (" + s.exitFor + ")"
	}
	switch {
	case code != s.exit:
		return fmt.Sprintf("exit %d, want %s", code, want), false
	case s.serves == "":
	case seen.current != d.serving || seen.oldbin != 0:
		return fmt.Sprintf("pid file %d, .oldbin %d; want %d and none", seen.current, seen.oldbin, d.serving), false
	case seen.probeErr != nil:
		return fmt.Sprintf("probe: %v", seen.probeErr), false
	case !onlyVersion(seen.versions, s.serves):
		return fmt.Sprintf("serving %s, want %s only", formatVersions(seen.versions), s.serves), false
	}
	return s.check(d, seen)
}

// expand replaces $DIR (the temporary directory), $ADDR (the master's
// address), $EXE (the baton binary) and $WORKERS in arguments.
func (d *demo) expand(args []string) []string {
	r := strings.NewReplacer("$DIR", d.dir, "$ADDR", d.addr, "$EXE", d.opts.Exe, "$WORKERS", strconv.Itoa(d.opts.Workers))
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.Replace(a)
	}
	return out
}
