package integration

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// The soak runs only when asked: it takes most of an hour (BENCHMARKS.md).
//
//	go test -v -run Soak -timeout 90m ./integration/ -soak
//	go test -v -run Soak -timeout 20m ./integration/ -soak -soak.cycles 40 -soak.every 10
var (
	soakOn     = flag.Bool("soak", false, "run TestSoak: upgrade cycles of baton run and nginx under load")
	soakCycles = flag.Int("soak.cycles", 0, "TestSoak's upgrade cycles per flavor (0: baton 1000, nginx 300)")
	soakEvery  = flag.Int("soak.every", 100, "TestSoak reports every this many cycles")
)

// soakFlavors are the masters TestSoak cycles, with their default counts.
var soakFlavors = []struct {
	flavor flavor
	cycles int
}{
	{flavor: flavorBaton, cycles: 1000},
	{flavor: flavorNginx, cycles: 300},
}

// Noise bounds of the checks that nothing grows (assertFlat).
const (
	// soakFDNoise: a master is sampled once its cycle has ended (pid files
	// settled, its workers serving), so its descriptors are those of its
	// configuration, the same for every generation: stdio, the pid file,
	// the listeners, and for baton the notify socket, one pidfd per worker
	// and the Go runtime's (epoll, eventfd, the cgroup CPU quota files).
	// The slack covers a status-file write or a worker's pidfd in flight
	// when /proc is read, twice over; a descriptor handed on from master
	// to master at every commit exceeds it within three cycles.
	soakFDNoise = 2
	// soakGoroutineNoise: a baton master's status file holds its goroutine
	// count as of its last event, which may fall while a worker's wait
	// goroutine or a signal's is starting or ending.
	soakGoroutineNoise = 2
	// soakRSSFactor and soakRSSSlackKiB: a baton master's RSS is mostly the
	// Go runtime's, and moves with when the last GC ran and how much the
	// scavenger has returned yet (a few MiB either way); nginx's moves
	// with the configuration it parsed. Growth within 1.5× + 4 MiB is
	// that noise; a leak that matters over a thousand generations shows as
	// steady growth in the rows long before it.
	soakRSSFactor   = 1.5
	soakRSSSlackKiB = 4 << 10
	// soakZombieWait bounds how long a zombie seen at a report may stay
	// before it counts: a process that just exited is a zombie until its
	// parent (a master, or this test's reaper) waits for it, which they do
	// on SIGCHLD; one still there after 10s was never going to be reaped.
	soakZombieWait = 10 * time.Second
)

// TestSoak runs -soak.cycles upgrade cycles of `baton run` and of nginx
// under continuous keep-alive and new-connection load. Every cycle replaces
// the binary and deploys a new release, runs `baton upgrade start`, then
// `commit` on even cycles and `rollback` on odd ones, and checks the result
// (exit 0, the right master with its workers, the right version served,
// the pid files settled). Every -soak.every cycles it logs a row: requests
// served and failed in the period, the zombies left, and the pid, open
// descriptors, RSS and goroutines (baton) of the masters that survived the
// period's last commit and last rollback ("c/r" columns). A master lives
// through at most one rollback before a commit replaces it, so what a
// master leaks shows in two ways: as growth from report to report when it
// is handed on to the next master, and as the rolled-back master holding
// more than the fresh one when a spawn, drain and rollback leave something
// behind. It fails on either beyond the bounds above, on any failed request
// and on any zombie. Keep-alive close races (package load: a request sent
// on an idle connection the retiring generation closes, retried once) are
// counted apart and are not failures, as in every test of this package.
func TestSoak(t *testing.T) {
	if !*soakOn {
		t.Skip("the soak runs only with -soak: go test -v -run Soak -timeout 90m ./integration/ -soak")
	}
	// Growth is measured from the first report to the last, and a report
	// within the first two cycles would hold the master the test started,
	// which no upgrade did (assertFlat).
	if *soakEvery < 3 || *soakCycles < 0 {
		t.Fatalf("-soak.every %d, -soak.cycles %d: want every >= 3 and cycles >= 0", *soakEvery, *soakCycles)
	}
	for _, sf := range soakFlavors {
		t.Run(string(sf.flavor), func(t *testing.T) {
			n := sf.cycles
			if *soakCycles > 0 {
				n = *soakCycles
			}
			if n < 2**soakEvery {
				t.Fatalf("%d cycles, reports every %d: need two reports to compare, so at least %d cycles", n, *soakEvery, 2**soakEvery)
			}
			runSoak(t, sf.flavor, n, *soakEvery)
		})
	}
}

// soakRow is one report: the period's traffic, and the two masters that
// survived its last cycles.
type soakRow struct {
	cycles   int
	perCycle time.Duration // mean wall time of the period's cycles
	served   int           // requests answered in the period, both modes
	failedKA int           // keep-alive requests failed in the period
	failedNC int           // new-connection requests failed in the period
	races    int           // keep-alive close races retried in the period (not failures)
	// committed is the new master the period's last commit left (at cycle
	// 0: the master the test started); rolledBack the old master its last
	// rollback kept, which had spawned, drained, got its workers back and
	// reaped the new master.
	committed, rolledBack masterSample
	zombies               int // found after the period's cycles, still zombies after soakZombieWait
}

// masterSample is a master as /proc and its status file showed it right
// after its cycle ended. The zero value is no sample.
type masterSample struct {
	pid, fds, rssKiB int
	goroutines       int // -1: not a baton master
}

// soak is one flavor's run.
type soak struct {
	p       *peer
	tr      *traffic
	serving string // the version the surviving master serves
	// committed and rolledBack are the latest samples of each kind.
	committed, rolledBack masterSample
	// zombies and reaped count, since the previous report, the zombies
	// countZombies found left and those it saw reaped.
	zombies, reaped int
	rows            []soakRow
	prev            []load.Result // the runs' snapshots at the previous report
	at              time.Time     // when the previous report was taken
}

func runSoak(t *testing.T, f flavor, cycles, every int) {
	p := startPeer(t, f, peerOptions{})
	ctx := testContext(t)
	s := &soak{p: p, tr: startLoad(ctx, t, p), serving: p.version}
	s.tr.progress(ctx, t, 10)
	t.Logf("%s: %d cycles (start, then commit on even cycles, rollback on odd), a report every %d", f, cycles, every)
	t.Logf("%s", soakHeader)
	s.committed = s.measure(t)
	s.report(ctx, t, 0)
	begin := time.Now()
	for i := 1; i <= cycles; i++ {
		s.cycle(ctx, t, i)
		if i%every == 0 {
			s.report(ctx, t, i)
		}
	}
	elapsed := time.Since(begin)
	res := s.tr.stop(t)
	assertNoFailures(t, res...)
	recordFigures(t, res)
	t.Logf("%s: %d cycles in %s, %s per cycle; the table:\n%s", f, cycles,
		elapsed.Round(time.Second), (elapsed / time.Duration(cycles)).Round(time.Millisecond), s.table())
	s.assertFlat(t)
}

// cycle runs upgrade cycle i: a new binary and release, `upgrade start`,
// then commit (i even) or rollback (i odd); it checks where that ended and
// samples the surviving master.
func (s *soak) cycle(ctx context.Context, t *testing.T, i int) {
	t.Helper()
	p := s.p
	old := p.masterPID(t)
	v := "v" + strconv.Itoa(i+1)
	runsNew := p.replaceBinary(t)
	p.release(t, v)
	batonCmdQuiet(ctx, t, p.upgradeArgs("start")...).wantCode(t, 0)
	if t.Failed() {
		t.Fatalf("cycle %d: upgrade start failed", i)
	}
	newPID := p.wantParked(t, old)
	want, master, verb := v, newPID, "commit"
	if i%2 == 1 {
		want, master, verb = s.serving, old, "rollback"
	}
	batonCmdQuiet(ctx, t, p.upgradeArgs(verb)...).wantCode(t, 0)
	switch {
	case verb == "commit" && alive(old):
		t.Errorf("old master %d still runs after commit", old)
	case verb == "commit":
		if err := runsNew(newPID); err != nil {
			t.Errorf("new master %d: %v", newPID, err)
		}
	case alive(newPID):
		t.Errorf("new master %d still runs after rollback", newPID)
	case len(p.workersOf(old)) != p.workers:
		t.Errorf("old master %d has %d workers after rollback, want %d", old, len(p.workersOf(old)), p.workers)
	}
	p.wantPidfiles(t, master)
	p.wantServing(ctx, t, want)
	s.serving = want
	if t.Failed() {
		t.Fatalf("cycle %d (%s) failed", i, verb)
	}
	if verb == "commit" {
		s.committed = s.measure(t)
	} else {
		s.rolledBack = s.measure(t)
	}
	// After every cycle, not only at reports: a zombie a master leaves
	// lasts only as long as the master, two cycles at most.
	s.countZombies(ctx, t)
	s.tr.progress(ctx, t, 5) // the load flows into the next cycle
}

// measure samples the master the pid file names.
func (s *soak) measure(t *testing.T) masterSample {
	t.Helper()
	p := s.p
	m := masterSample{pid: p.masterPID(t), goroutines: -1}
	var err error
	if m.fds, err = openFDs(m.pid); err != nil {
		t.Fatalf("master %d: %v", m.pid, err)
	}
	if m.rssKiB, err = rssKiB(m.pid); err != nil {
		t.Fatalf("master %d: %v", m.pid, err)
	}
	if p.flavor == flavorBaton {
		st, err := statusfile.Read(statusfile.Path(p.pidfile, m.pid))
		if err != nil || st.PID != m.pid {
			t.Fatalf("master %d: status file of pid %d: %v", m.pid, st.PID, err)
		}
		m.goroutines = st.Goroutines
	}
	return m
}

// report takes the period's traffic and the latest master samples, counts
// the zombies, logs the row and keeps it.
func (s *soak) report(ctx context.Context, t *testing.T, cycles int) {
	t.Helper()
	s.countZombies(ctx, t)
	r := soakRow{cycles: cycles, committed: s.committed, rolledBack: s.rolledBack, zombies: s.zombies}
	if s.reaped > 0 {
		t.Logf("%d zombies seen after this period's cycles were reaped within %s", s.reaped, soakZombieWait)
	}
	s.zombies, s.reaped = 0, 0
	now := make([]load.Result, len(s.tr.runs))
	for i, run := range s.tr.runs {
		now[i] = run.Snapshot()
		var prev load.Result
		if s.prev != nil {
			prev = s.prev[i]
		}
		r.served += now[i].OK - prev.OK
		r.races += now[i].Races - prev.Races
		if now[i].Mode == load.KeepAlive {
			r.failedKA += now[i].Failed - prev.Failed
		} else {
			r.failedNC += now[i].Failed - prev.Failed
		}
	}
	if len(s.rows) > 0 {
		r.perCycle = time.Since(s.at) / time.Duration(cycles-s.rows[len(s.rows)-1].cycles)
	}
	s.prev, s.at = now, time.Now()
	s.rows = append(s.rows, r)
	t.Logf("%s", r)
}

// countZombies looks for zombies whose parent is this test binary or one of
// the test's processes (a master, a worker, a baton command), waits up to
// soakZombieWait for them to be reaped, and adds those reaped to s.reaped
// and those left to s.zombies, each of which fails the test.
func (s *soak) countZombies(ctx context.Context, t *testing.T) {
	t.Helper()
	seen := -1
	var left []proc
	waitFor(ctx, soakZombieWait, func() (bool, error) {
		left = zombiesOf(s.p.owner)
		if seen < 0 {
			seen = len(left)
		}
		return len(left) == 0, nil
	})
	s.reaped += max(seen-len(left), 0)
	s.zombies += len(left)
	for _, z := range left {
		t.Errorf("zombie pid %d (parent %d) still unreaped after %s: %s", z.pid, z.ppid, soakZombieWait, z.cmdline)
	}
}

// zombiesOf lists the zombies whose parent is this process or one of o's.
func zombiesOf(o *owner) []proc {
	parents := map[int]bool{os.Getpid(): true}
	for _, m := range o.members() {
		parents[m.pid] = true
	}
	var out []proc
	for _, p := range allProcs() {
		if p.zombie() && parents[p.ppid] {
			out = append(out, p)
		}
	}
	return out
}

// assertFlat fails the test if a period had a failed request, or if the
// last report shows more descriptors or RSS than the first one plus the
// noise bounds, for the committed and the rolled-back master each. The
// first one is the first report whose sample is not of the master the test
// started (cycle 0's, and cycle 1's rolled-back one): that master was not
// started by an upgrade, and its figures differ (nginx's RSS is a third of
// a re-executed master's). (Zombies fail the test as each report finds
// them.)
func (s *soak) assertFlat(t *testing.T) {
	t.Helper()
	initial := s.rows[0].committed.pid
	last := s.rows[len(s.rows)-1]
	for _, c := range []struct {
		name   string
		sample func(soakRow) masterSample
	}{
		{name: "committed", sample: func(r soakRow) masterSample { return r.committed }},
		{name: "rolled-back", sample: func(r soakRow) masterSample { return r.rolledBack }},
	} {
		i := slices.IndexFunc(s.rows, func(r soakRow) bool { m := c.sample(r); return m.pid != 0 && m.pid != initial })
		if i < 0 || i == len(s.rows)-1 {
			t.Errorf("%s master: fewer than two reports to compare (run more cycles)", c.name)
			continue
		}
		first, a, b := s.rows[i].cycles, c.sample(s.rows[i]), c.sample(last)
		if b.fds > a.fds+soakFDNoise {
			t.Errorf("%s master: open descriptors grew from %d (cycle %d) to %d (cycle %d), beyond the noise of %d",
				c.name, a.fds, first, b.fds, last.cycles, soakFDNoise)
		}
		if limit := int(float64(a.rssKiB)*soakRSSFactor) + soakRSSSlackKiB; b.rssKiB > limit {
			t.Errorf("%s master: RSS grew from %d KiB (cycle %d) to %d KiB (cycle %d), beyond %d KiB (%.1f× + %d KiB)",
				c.name, a.rssKiB, first, b.rssKiB, last.cycles, limit, soakRSSFactor, soakRSSSlackKiB)
		}
	}
	for _, r := range s.rows {
		if r.failedKA+r.failedNC > 0 {
			t.Errorf("period ending at cycle %d: %d keep-alive and %d new-connection requests failed",
				r.cycles, r.failedKA, r.failedNC)
		}
		c, rb := r.committed, r.rolledBack
		if rb.pid == 0 || rb.pid == initial {
			continue
		}
		// A master that spawned, drained and rolled back holds what a
		// fresh one holds: a rollback leaves nothing behind.
		if rb.fds > c.fds+soakFDNoise || rb.goroutines > c.goroutines+soakGoroutineNoise {
			t.Errorf("cycle %d: the rolled-back master %d holds %d descriptors and %d goroutines, a fresh one (%d) %d and %d",
				r.cycles, rb.pid, rb.fds, rb.goroutines, c.pid, c.fds, c.goroutines)
		}
	}
}

// soakHeader names the columns of soakRow.String; a "c/r" column holds the
// committed master's figure, then the rolled-back one's.
const soakHeader = "cycles  s/cycle   served  failed ka/nc  races  master pid c/r   fds c/r  RSS KiB c/r    goroutines c/r  zombies"

func (r soakRow) String() string {
	c, rb := r.committed, r.rolledBack
	return fmt.Sprintf("%6d  %7.3f  %7d  %5d/%-6d  %5d  %15s  %8s  %13s  %14s  %7d",
		r.cycles, r.perCycle.Seconds(), r.served, r.failedKA, r.failedNC, r.races,
		pair(c.pid, rb.pid), pair(c.fds, rb.fds), pair(c.rssKiB, rb.rssKiB), pair(c.goroutines, rb.goroutines), r.zombies)
}

// pair formats a committed and a rolled-back figure; "-" is no figure (a
// zero pid's sample, or no goroutine count).
func pair(c, r int) string {
	cell := func(n int) string {
		if n <= 0 {
			return "-"
		}
		return strconv.Itoa(n)
	}
	return cell(c) + "/" + cell(r)
}

// table is the rows as a Markdown table, for BENCHMARKS.md.
func (s *soak) table() string {
	var b strings.Builder
	b.WriteString("| cycles | s/cycle | served | failed keep-alive / new conn | keep-alive races | master pid c/r | open fds c/r | RSS KiB c/r | goroutines c/r | zombies |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range s.rows {
		c, rb := r.committed, r.rolledBack
		fmt.Fprintf(&b, "| %d | %.3f | %d | %d / %d | %d | %s | %s | %s | %s | %d |\n",
			r.cycles, r.perCycle.Seconds(), r.served, r.failedKA, r.failedNC, r.races,
			pair(c.pid, rb.pid), pair(c.fds, rb.fds), pair(c.rssKiB, rb.rssKiB), pair(c.goroutines, rb.goroutines), r.zombies)
	}
	return b.String()
}

// openFDs counts the descriptors pid has open.
func openFDs(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents), err
}

// rssKiB reads VmRSS from /proc/PID/status.
func rssKiB(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
