package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
)

// traffic is client load on a peer while a test runs: keep-alive requests
// over TCP and one-connection-per-request over the unix socket, at the same
// time, every response checked.
type traffic struct {
	name string // what the load is on, for the log
	runs []*load.Run
	done bool
}

// loadPause is each load worker's pause between requests: enough traffic to
// catch any window without saturating the 2-core machine the suite runs on.
const loadPause = 5 * time.Millisecond

// startLoad starts load on p in both modes (2 keep-alive workers on TCP, 2
// new-connection workers on the unix socket). Every response must be a 200
// whose body is one of the flavor's answers. The load ends with stop, or
// with the test.
func startLoad(ctx context.Context, t *testing.T, p *peer) *traffic {
	t.Helper()
	expect := func(status int, body []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("status %d", status)
		}
		return p.expectBody(string(body))
	}
	tr := &traffic{name: string(p.flavor)}
	for _, o := range []load.Options{
		{Target: p.url("/"), Mode: load.KeepAlive},
		{Target: p.unixTarget("/"), Mode: load.NewConn},
	} {
		o.Concurrency = 2
		o.Pause = loadPause
		o.Timeout = 10 * time.Second
		o.Expect = expect
		r, err := load.Start(ctx, o)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		tr.runs = append(tr.runs, r)
	}
	t.Cleanup(func() {
		if !tr.done {
			tr.stop(t)
		}
	})
	return tr
}

// progress waits until every run has answered at least n more requests,
// so a scenario's steps happen under traffic that is actually flowing.
func (tr *traffic) progress(ctx context.Context, t testing.TB, n int) {
	t.Helper()
	base := make([]int, len(tr.runs))
	for i, r := range tr.runs {
		ok, failed := r.Counts()
		base[i] = ok + failed
	}
	mustWait(ctx, t, 30*time.Second, fmt.Sprintf("%d more requests per load run", n), func() (bool, error) {
		for i, r := range tr.runs {
			ok, failed := r.Counts()
			if ok+failed-base[i] < n {
				return false, fmt.Errorf("run %d at %d", i, ok+failed-base[i])
			}
		}
		return true, nil
	})
}

// stop ends the load and logs each run's result. A second call returns the
// same results.
func (tr *traffic) stop(t testing.TB) []load.Result {
	t.Helper()
	tr.done = true
	var out []load.Result
	for _, r := range tr.runs {
		res := r.Stop()
		t.Logf("load %s %s: %s; versions %s", tr.name, res.Target, res, formatVersions(versions(res)))
		out = append(out, res)
	}
	return out
}

// assertNoFailures fails the test if any request of any result failed (a
// keep-alive race is not a failure: see package load), or if a run made no
// requests at all, which would prove nothing.
func assertNoFailures(t testing.TB, results ...load.Result) {
	t.Helper()
	for _, r := range results {
		if r.Requests == 0 || r.OK == 0 {
			t.Errorf("load on %s (%s) made %d requests, %d ok: no traffic, no proof", r.Target, r.Mode, r.Requests, r.OK)
		}
		if r.Failed != 0 {
			t.Errorf("load on %s (%s): %d of %d requests failed: %v; samples: %s",
				r.Target, r.Mode, r.Failed, r.Requests, r.Failures, strings.Join(r.Samples, " | "))
		}
	}
}

// assertSawVersions fails the test unless every version in want answered
// some requests of every run.
func assertSawVersions(t testing.TB, results []load.Result, want ...string) {
	t.Helper()
	for _, r := range results {
		got := versions(r)
		for _, v := range want {
			if got[v] == 0 {
				t.Errorf("load on %s (%s) never saw version %s: %s", r.Target, r.Mode, v, formatVersions(got))
			}
		}
	}
}

// versions tallies a result's answers by the version they name (tags hold
// pids too).
func versions(r load.Result) map[string]int {
	out := map[string]int{}
	for tag, n := range r.Tags {
		out[versionOf(tag)] += n
	}
	return out
}

func formatVersions(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// figures are the load totals of every scenario, for the summary TestMain
// prints at the end of the run.
var figures struct {
	mu   sync.Mutex
	rows []figureRow
}

type figureRow struct {
	test                    string
	requests, failed, races int
}

// recordFigures adds a scenario's load totals to the summary.
func recordFigures(t testing.TB, results []load.Result) {
	row := figureRow{test: t.Name()}
	for _, r := range results {
		row.requests += r.Requests
		row.failed += r.Failed
		row.races += r.Races
	}
	figures.mu.Lock()
	figures.rows = append(figures.rows, row)
	figures.mu.Unlock()
}

// printFigures writes the summary: one line per scenario with -v, and the
// totals.
func printFigures(w io.Writer, verbose bool) {
	figures.mu.Lock()
	defer figures.mu.Unlock()
	if len(figures.rows) == 0 {
		return
	}
	var total figureRow
	for _, r := range figures.rows {
		if verbose {
			fmt.Fprintf(w, "integration: %-60s %7d requests %3d failed %3d keep-alive races\n", r.test, r.requests, r.failed, r.races)
		}
		total.requests += r.requests
		total.failed += r.failed
		total.races += r.races
	}
	fmt.Fprintf(w, "integration: %d scenarios under load: %d requests, %d failed, %d keep-alive races retried\n",
		len(figures.rows), total.requests, total.failed, total.races)
}
