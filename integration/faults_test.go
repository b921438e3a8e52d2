package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snapshot is what a master looked like before a fault: "nothing touched"
// means it still looks so afterwards.
type snapshot struct {
	master  int
	workers []int
}

func (p *peer) snapshot(t testing.TB) snapshot {
	t.Helper()
	s := snapshot{master: p.masterPID(t)}
	for _, w := range p.workersOf(s.master) {
		s.workers = append(s.workers, w.pid)
	}
	slices.Sort(s.workers)
	return s
}

// wantUntouched checks that nothing was signalled: the same master with the
// very same workers, no .oldbin, no pending pid file.
func (p *peer) wantUntouched(t testing.TB, before snapshot) {
	t.Helper()
	after := p.snapshot(t)
	if after.master != before.master || !slices.Equal(after.workers, before.workers) {
		t.Errorf("the master was touched: before %+v, after %+v", before, after)
	}
	p.wantPidfiles(t, before.master)
}

// wantRolledBack checks that the old master serves alone with all its
// workers and that every other master is gone.
func (p *peer) wantRolledBack(ctx context.Context, t testing.TB, old int, others ...int) {
	t.Helper()
	// Every child of the old master must be one of its workers: a new
	// master left hanging as its child (never ready, never killed) makes
	// the old master ignore the next USR2.
	mustWait(ctx, t, 30*time.Second, fmt.Sprintf("the old master %d to have its %d workers and no other child", old, p.workers), func() (bool, error) {
		ws := p.workersOf(old)
		var cmds []string
		for _, c := range ws {
			cmds = append(cmds, fmt.Sprintf("%d %q", c.pid, c.cmdline))
		}
		return len(ws) == p.workers, fmt.Errorf("%d children: %s", len(ws), strings.Join(cmds, ", "))
	})
	for _, pid := range others {
		if pid != 0 && pid != old && alive(pid) {
			t.Errorf("master %d still runs after the rollback", pid)
		}
	}
	for _, c := range children(old) {
		if slices.Contains(others, c.pid) {
			t.Errorf("new master %d is still a child of the old", c.pid)
		}
	}
}

// faultCase is one fault of the matrix that the generic flow handles:
// inject the fault, run `upgrade start`, check the exit code, then check
// the end state the exit code promises (2: nothing touched; 1: rolled back,
// the old generation serves; 0: the upgrade worked, and is committed).
type faultCase struct {
	name string
	// inject breaks something (after the new release v2 is deployed) and
	// returns extra `upgrade start` flags.
	inject func(ctx context.Context, t *testing.T, p *peer) []string
	// codes are the exit codes the documented behaviour allows for flavor f,
	// with the reason when there is more than one.
	codes func(f flavor) []int
	// permanent says the fault cannot be repaired without restarting the
	// master, so no second upgrade is tried after it.
	permanent bool
	// say, when set, is what the error on stderr must say.
	say string
}

func always(codes ...int) func(flavor) []int { return func(flavor) []int { return codes } }

// TestFault is the fault matrix for every flavor: each fault under load,
// each asserting the documented exit code, the old generation serving (or
// the new one, where the upgrade legitimately succeeds), consistent pid
// files and no failed request.
func TestFault(t *testing.T) {
	cases := []faultCase{
		{
			name: "binary-missing",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				p.breakBinary(t, "missing")
				return nil
			},
			// nginx and baton masters exec a binary baton can see: preflight
			// refuses. unicorn and gunicorn run a script through an
			// interpreter (/proc/PID/exe is ruby or python): the new master
			// dies at once and the upgrade is rolled back.
			codes: func(f flavor) []int {
				if f == flavorUnicorn || f == flavorGunicorn {
					return []int{1, 2}
				}
				return []int{2}
			},
		},
		{
			name: "binary-not-executable",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				p.breakBinary(t, "noexec")
				return nil
			},
			// gunicorn re-executes python with the script as an argument, so
			// a script without the x bit still runs: 0 is right for it.
			codes: func(f flavor) []int {
				switch f {
				case flavorUnicorn:
					return []int{1, 2}
				case flavorGunicorn:
					return []int{0, 2}
				}
				return []int{2}
			},
		},
		{
			name: "binary-exits-at-once",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				p.breakBinary(t, "exits")
				return nil
			},
			codes: always(1),
		},
		{
			name: "broken-config",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				p.breakConfig(t)
				return []string{"--spawn-timeout", "10s"}
			},
			codes: always(1),
		},
		{
			name: "preflight-fails",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				if p.flavor == flavorNginx {
					p.breakConfig(t)
					return []string{"--preflight", p.bin + " -t -q -p " + p.dir + "/ -c " + filepath.Join(p.dir, "nginx.conf")}
				}
				return []string{"--preflight", "exit 1"}
			},
			codes: always(2),
		},
		{
			// A hung preflight is stopped at --preflight-timeout (with
			// what it started) and refused before USR2: nothing touched.
			name: "preflight-hangs",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				return []string{"--preflight", "sleep 60", "--preflight-timeout", "500ms"}
			},
			codes: always(2),
			say:   "timed out after 500ms",
		},
		{
			// The hung new master ignores the graceful stop signals
			// (nginx's: it inherited the master's blocked signals across
			// exec; unicorn's: still loading its app): the rollback
			// escalates to KILL, --stop-timeout apart.
			name: "spawn-timeout",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				p.neverReady(t)
				return []string{"--spawn-timeout", "3s", "--stop-timeout", "1s"}
			},
			codes: always(1),
		},
		{
			name: "unhealthy",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				p.setFail(t, true)
				return nil
			},
			codes: always(1),
		},
		{
			name: "release-deleted",
			inject: func(_ context.Context, t *testing.T, p *peer) []string {
				// Deploy v3 as a new release and delete v2, which current
				// pointed to... and v1, the release the master started from.
				p.release(t, "v3")
				if err := os.RemoveAll(filepath.Join(p.dir, "releases", "v1")); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			// baton's master re-resolves --dir and its own path by name
			// (issue: "the old release directory deleted before USR2 does
			// not break it"); the others may be refused by the preflight
			// (their working directory is gone), or succeed where the
			// server changes into the symlink by name (unicorn's
			// working_directory, gunicorn's $PWD).
			codes: func(f flavor) []int {
				if f == flavorBaton {
					return []int{0}
				}
				return []int{0, 2}
			},
			permanent: true, // the master's own working directory is gone
		},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			for _, fc := range cases {
				t.Run(fc.name, func(t *testing.T) {
					p := startPeer(t, f, peerOptions{})
					ctx := testContext(t)
					tr := startLoad(ctx, t, p)
					tr.progress(ctx, t, 10)
					before := p.snapshot(t)
					p.release(t, "v2")
					extra := fc.inject(ctx, t, p)
					// --spawn-timeout 10s bounds the faults that only a timeout reveals.
					r := p.upgrade(ctx, t, "start", append([]string{"--spawn-timeout", "10s"}, append(extra, "--commit")...)...)
					codes := fc.codes(f)
					r.wantCode(t, codes...)
					if fc.say != "" && !strings.Contains(r.Stderr, fc.say) {
						t.Errorf("stderr does not say %q:\n%s", fc.say, r.Stderr)
					}
					switch r.Code {
					case 2, 1:
						if r.Code == 2 {
							p.wantUntouched(t, before)
						} else {
							p.wantRolledBack(ctx, t, before.master)
						}
						p.wantServing(ctx, t, "v1")
						p.wantPidfiles(t, before.master)
						if fc.permanent {
							p.finish(ctx, t, tr, "v1", before.master, "v1")
							return
						}
						// The fault left nothing behind that blocks the next
						// upgrade (a hung new master, say, makes nginx ignore
						// USR2): repaired, an upgrade succeeds.
						p.repair(t, "v9")
						p.upgrade(ctx, t, "start", "--commit").wantCode(t, 0)
						p.finish(ctx, t, tr, "v9", p.masterPID(t), "v1", "v9")
					case 0:
						if !slices.Contains(codes, 0) {
							t.FailNow()
						}
						master := p.masterPID(t)
						if master == before.master {
							t.Errorf("exit 0 but the pid file still names the old master %d", master)
						}
						p.finish(ctx, t, tr, p.version, master, "v1", p.version)
					default:
						t.FailNow()
					}
				})
			}
		})
	}
}

// neverReady makes the next generation start but never become ready: the
// app boots for a minute (baton: DEMO_BOOT; unicorn and gunicorn: the
// preloaded app sleeps while loading), or, for nginx, whose start-up is
// instant, the binary the master re-executes hangs.
func (p *peer) neverReady(t testing.TB) {
	t.Helper()
	switch p.flavor {
	case flavorNginx:
		writeFile(t, p.bin, "#!/bin/sh\nexec sleep 120\n", 0o755)
	case flavorUnicorn:
		writeFile(t, filepath.Join(p.current, "config.ru"), "sleep 120\n"+unicornApp, 0o644)
	case flavorGunicorn:
		writeFile(t, filepath.Join(p.current, "app.py"), "import time; time.sleep(120)\n"+gunicornApp, 0o644)
	case flavorBaton:
		f, err := os.OpenFile(filepath.Join(p.current, "app.env"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("DEMO_BOOT=120s\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// waitStderr waits until the running baton printed s on stderr (its
// progress lines) or exited.
func (b *batonProc) waitStderr(ctx context.Context, t testing.TB, s string) bool {
	t.Helper()
	found := false
	mustWait(ctx, t, 30*time.Second, fmt.Sprintf("baton to print %q", s), func() (bool, error) {
		if strings.Contains(b.err.String(), s) {
			found = true
			return true, nil
		}
		select {
		case <-b.exited():
			return true, nil
		default:
		}
		return false, nil
	})
	return found
}

// TestFaultNewMasterKilled SIGKILLs the new master as soon as it appears:
// the upgrade is rolled back (exit 1) and the old generation serves alone.
func TestFaultNewMasterKilled(t *testing.T) {
	forEachFlavor(t, func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
		old := p.masterPID(t)
		p.release(t, "v2")
		b := batonStart(ctx, t, p.upgradeArgs("start", "--commit", "--verify-for", "5s")...)
		var newPID int
		mustWait(ctx, t, 30*time.Second, "the new master to appear", func() (bool, error) {
			pid, err := readPid(p.pidfile + dialects[p.flavor].pendingSuffix)
			if err == nil && pid != old && alive(pid) {
				newPID = pid
				return true, nil
			}
			select {
			case <-b.exited():
				return true, nil
			default:
			}
			return false, err
		})
		if newPID == 0 {
			b.wait(t)
			t.Fatalf("upgrade start ended before a new master appeared in the pid file")
		}
		p.owner.adopt(newPID)
		sendSignal(t, newPID, syscall.SIGKILL)
		r := b.wait(t)
		r.wantCode(t, 1)
		p.wantRolledBack(ctx, t, old, newPID)
		want := "v1"
		if p.flavor == flavorNginx && strings.Contains(r.Stderr, "with which it reads its configuration again") {
			// nginx handled the WINCH after reaping the killed new master
			// (both in one pass of its loop, reap first): it stopped its
			// workers and forgot its new binary, and then nothing but
			// HUP, a reconfiguration from nginx.conf on disk (the v2
			// release's, which holds the version), brings workers back.
			// baton sends it only once no restart came, and says so.
			want = "v2"
		}
		p.finish(ctx, t, tr, want, old, "v1")
	})
}

// TestFaultOldMasterKilled SIGKILLs the old master during the drain: a
// rollback is impossible, so the new generation must be kept serving, and
// `upgrade commit` must settle the pid files on the new master.
func TestFaultOldMasterKilled(t *testing.T) {
	forEachFlavor(t, func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
		old := p.masterPID(t)
		p.release(t, "v2")
		b := batonStart(ctx, t, p.upgradeArgs("start", "--verify-for", "3s")...)
		if !b.waitStderr(ctx, t, "drain:") {
			b.wait(t)
			t.Fatalf("upgrade start ended before the drain")
		}
		newPID := p.pendingPID(t)
		sendSignal(t, old, syscall.SIGKILL)
		r := b.wait(t)
		// 0: it noticed nothing wrong (the old master is no longer needed);
		// 4: it says the state needs an operator; 1 would claim a rollback
		// to a master that is dead.
		r.wantCode(t, 0, 4)
		s, _ := p.status(ctx, t)
		if s.New == nil || s.New.Identity.PID != newPID {
			t.Errorf("status after the old master was killed names new master %+v, want %d", s.New, newPID)
		}
		if s.State != "committed" {
			// Not settled by itself: commit must settle it.
			p.upgrade(ctx, t, "commit").wantCode(t, 0)
		}
		if !alive(newPID) {
			t.Fatalf("the new master %d is gone", newPID)
		}
		p.finish(ctx, t, tr, "v2", newPID, "v1", "v2")
	})
}

// TestFaultOrchestratorKilled SIGKILLs `baton upgrade start` in each of its
// states; `upgrade status` must report the truth, and `upgrade rollback` or
// `upgrade commit` must finish the job.
func TestFaultOrchestratorKilled(t *testing.T) {
	t.Parallel() // long and self-contained: see doc.go, Time
	for _, tc := range []struct {
		name   string
		verb   string // the verb killed: "" is start; commit and rollback run after a start
		at     string // progress text after which the orchestrator is killed
		finish string // the verb that finishes the job
	}{
		// Killed right after USR2, the new master is not verified: only
		// rollback may finish that.
		{name: "spawning/rollback", at: "spawn: sent", finish: "rollback"},
		{name: "draining/rollback", at: "drain: sent", finish: "rollback"},
		{name: "verifying/commit", at: "parked", finish: "commit"},
		{name: "verifying/rollback", at: "parked", finish: "rollback"},
		{name: "committing/commit", verb: "commit", at: "commit:", finish: "commit"},
		{name: "rolling-back/rollback", verb: "rollback", at: "rollback:", finish: "rollback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachFlavor(t, func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
				old := p.masterPID(t)
				// A 3-second request keeps an old worker busy, so the
				// drain lasts long enough to be interrupted (not for baton,
				// whose demo app has no slow endpoint).
				slow, _ := p.slowRequest(ctx, "v1")
				tr.progress(ctx, t, 5)
				p.release(t, "v2")
				var b *batonProc
				if tc.verb == "" {
					b = batonStart(ctx, t, p.upgradeArgs("start", "--verify-for", "5s")...)
				} else {
					p.upgrade(ctx, t, "start").wantCode(t, 0)
					b = batonStart(ctx, t, p.upgradeArgs(tc.verb)...)
				}
				if !b.waitStderr(ctx, t, tc.at) {
					b.wait(t)
					t.Fatalf("upgrade %s ended before %q", tc.verb, tc.at)
				}
				b.kill(t) // it may have finished already
				s, r := p.status(ctx, t)
				if r.Code == 4 || s.State == "inconsistent" {
					t.Errorf("status after the orchestrator was killed at %q: exit %d, state %s: %s", tc.at, r.Code, s.State, s.Advice)
				}
				settled := s.State == "committed" || s.State == "rolled-back"
				switch {
				case settled:
				case s.Old != nil && s.Old.Identity.PID != old:
					t.Errorf("status names old master %+v, want %d", s.Old, old)
				case s.Old == nil:
					// Killed at "commit:", the old master may already be
					// exiting: gunicorn removes its pid file, then exits.
					// Naming none is the truth only if it is on its way out.
					err := waitFor(ctx, 10*time.Second, func() (bool, error) { return !alive(old), nil })
					if err != nil {
						t.Errorf("status names no old master while %d still runs (state %s): %v", old, s.State, err)
					}
				}
				newPID := 0
				if s.New != nil {
					newPID = s.New.Identity.PID
					p.owner.adopt(newPID)
				}
				// The truth, as the harness sees it: a live new master named
				// by the (pending) pid file must be the one status names.
				if pid, err := readPid(p.pidfile + dialects[p.flavor].pendingSuffix); err == nil && pid != old && alive(pid) && pid != newPID {
					t.Errorf("status names new master %d, the pid file names the live master %d", newPID, pid)
					p.owner.adopt(pid)
				}
				// Whatever was half done, the verb finishes it (unless it
				// is settled already: the masters may finish a commit or a
				// rollback by themselves, and a settled state has nothing
				// left to commit or roll back).
				if !settled {
					p.upgrade(ctx, t, tc.finish).wantCode(t, 0)
				}
				if err := <-slow; err != nil {
					t.Errorf("request in flight: %v", err)
				}
				if tc.finish == "rollback" {
					p.wantRolledBack(ctx, t, old, newPID)
					p.finish(ctx, t, tr, "v1", old, "v1")
					return
				}
				master := p.masterPID(t)
				if master == old || alive(old) {
					t.Errorf("after commit the pid file names %d; old master %d alive: %v", master, old, alive(old))
				}
				p.finish(ctx, t, tr, "v2", master, "v1", "v2")
			})
		})
	}
}

// TestFaultTwoOrchestrators runs a second `upgrade start` (and a commit)
// while one runs on the same pid file: both are refused with exit 3 and
// touch nothing; the first finishes.
func TestFaultTwoOrchestrators(t *testing.T) {
	forEachFlavor(t, func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
		p.release(t, "v2")
		first := batonStart(ctx, t, p.upgradeArgs("start", "--commit", "--verify-for", "3s")...)
		if !first.waitStderr(ctx, t, "spawn: sent") {
			first.wait(t)
			t.Fatalf("the first upgrade ended before it spawned")
		}
		second := p.upgrade(ctx, t, "start", "--commit")
		second.wantCode(t, 3)
		if !strings.Contains(second.Stderr+second.Stdout, fmt.Sprint(first.pid())) {
			t.Errorf("the refusal does not name the holder, pid %d", first.pid())
		}
		p.upgrade(ctx, t, "rollback").wantCode(t, 3)
		first.wait(t).wantCode(t, 0)
		p.finish(ctx, t, tr, "v2", p.masterPID(t), "v1", "v2")
	})
}

// forEachFlavor runs body for each flavor as a subtest, with a fresh peer and
// load running.
func forEachFlavor(t *testing.T, body func(ctx context.Context, t *testing.T, p *peer, tr *traffic)) {
	t.Helper()
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			p := startPeer(t, f, peerOptions{})
			ctx := testContext(t)
			tr := startLoad(ctx, t, p)
			tr.progress(ctx, t, 10)
			body(ctx, t, p, tr)
		})
	}
}

// TestFaultPidfile points `upgrade start` at bad pid files: a live
// unrelated process (fresh, and a recycled pid: written before the process
// started), empty, garbage, negative, huge, a symlink to the real pid file.
// Each is refused with exit 2, and nothing is signalled: the unrelated
// process recorded no signal and runs, the master has the same workers.
func TestFaultPidfile(t *testing.T) {
	forEachFlavor(t, func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
		before := p.snapshot(t)
		record := filepath.Join(p.dir, "witness.signals")
		witness := startWitness(ctx, t, record)
		for _, c := range []struct {
			name  string
			write func(path string)
		}{
			{"unrelated-process", func(path string) { writeFile(t, path, fmt.Sprintf("%d\n", witness), 0o644) }},
			{"recycled-pid", func(path string) {
				writeFile(t, path, fmt.Sprintf("%d\n", witness), 0o644)
				old := time.Now().Add(-time.Hour)
				if err := os.Chtimes(path, old, old); err != nil {
					t.Fatal(err)
				}
			}},
			{"empty", func(path string) { writeFile(t, path, "", 0o644) }},
			{"garbage", func(path string) { writeFile(t, path, "nginx\x00\xff 12 13\n", 0o644) }},
			{"negative", func(path string) { writeFile(t, path, "-1\n", 0o644) }},
			{"zero", func(path string) { writeFile(t, path, "0\n", 0o644) }},
			{"huge", func(path string) { writeFile(t, path, "99999999999999999999\n", 0o644) }},
			{"symlink", func(path string) {
				if err := os.Symlink(p.pidfile, path); err != nil {
					t.Fatal(err)
				}
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				path := filepath.Join(p.dir, c.name+".pid")
				c.write(path)
				for _, flavorArg := range []string{"auto", string(p.flavor)} {
					r := batonCmd(ctx, t, "upgrade", "start", "--pidfile", path, "--flavor", flavorArg, "--check", p.check(), "--commit")
					r.wantCode(t, 2)
				}
				if !alive(witness) {
					t.Fatalf("the unrelated process %d is gone", witness)
				}
				if data, _ := os.ReadFile(record); len(data) > 0 {
					t.Errorf("the unrelated process received signals: %q", data)
				}
				for _, suffix := range []string{".oldbin", ".2"} {
					if _, err := os.Stat(path + suffix); err == nil {
						t.Errorf("%s%s was created", c.name, suffix)
					}
				}
			})
		}
		p.wantUntouched(t, before)
		p.finish(ctx, t, tr, "v1", before.master, "v1")
	})
}

// startWitness starts the witness helper (a re-executed test binary that
// records every signal it gets) and returns its pid once it is ready.
func startWitness(ctx context.Context, t testing.TB, record string) int {
	t.Helper()
	o := ownerOf(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := execCommand(ctx, exe, record)
	cmd.Env = append(os.Environ(), envHelper+"=witness", o.marker)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startManaged(cmd); err != nil {
		t.Fatal(err)
	}
	o.adopt(cmd.Process.Pid)
	// The witness closes stdout once its signal handlers are installed.
	buf := make([]byte, 1)
	stdout.Read(buf)
	return cmd.Process.Pid
}
