package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/upgrade/load"
)

// startLoad starts one keep-alive and one new-connection load run, and a
// live counter on a terminal.
func (d *demo) startLoad(ctx context.Context) error {
	// The load outlives ctx only until stopLoad; cleanup stops it too.
	for _, mode := range []load.Mode{load.KeepAlive, load.NewConn} {
		r, err := load.Start(context.WithoutCancel(ctx), load.Options{
			Target:      "http://" + d.addr + "/",
			Concurrency: d.opts.Concurrency,
			Mode:        mode,
			Timeout:     5 * time.Second,
			Expect:      expect,
		})
		if err != nil {
			d.stopLoad()
			return fmt.Errorf("demo: %w", err)
		}
		d.loads = append(d.loads, r)
	}
	d.out.linef("▶ load: %d keep-alive + %d new-connection clients on http://%s/, every answer checked",
		d.opts.Concurrency, d.opts.Concurrency, d.addr)
	d.out.live(func() string {
		ok, failed := d.counts()
		return fmt.Sprintf("  … %d requests served, %d failed", ok, failed)
	})
	return nil
}

// counts is what the load runs saw so far. The live counter calls it from
// its own goroutine, under the progress lock, which stopLoad takes (through
// live(nil)) before it changes d.loads.
func (d *demo) counts() (ok, failed int) {
	for _, r := range d.loads {
		o, f := r.Counts()
		ok += o
		failed += f
	}
	return ok, failed
}

// steady lets the load run for a while, so the report shows traffic between
// the steps.
func (d *demo) steady(ctx context.Context, name string, dur time.Duration) error {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	ok, failed := d.counts()
	d.out.linef("  %s: %d requests served so far, %d failed", name, ok, failed)
	return nil
}

// stopLoad stops the load runs (a second call does nothing) and adds their
// results to the report.
func (d *demo) stopLoad() {
	d.out.live(nil)
	if len(d.loads) == 0 {
		return
	}
	for _, r := range d.loads {
		res := r.Stop()
		d.rep.Served += res.OK
		d.rep.Failed += res.Failed
		d.rep.Races += res.Races
		for k, n := range res.Failures {
			if d.rep.Failures == nil {
				d.rep.Failures = map[string]int{}
			}
			d.rep.Failures[k] += n
		}
		d.rep.Samples = append(d.rep.Samples, res.Samples...)
		for tag, n := range res.Tags {
			d.rep.ByVersion[version([]byte(tag))] += n
		}
		d.rep.Load = append(d.rep.Load, res.String())
	}
	d.loads = nil
	if d.rep.Failed > 0 {
		d.failures = append(d.failures, fmt.Sprintf("%d requests failed", d.rep.Failed))
	}
}

// probe makes n requests on new connections and tallies the versions that
// answered.
func (d *demo) probe(ctx context.Context, n int) (map[string]int, error) {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	defer client.CloseIdleConnections()
	seen := map[string]int{}
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+"/", nil)
		if err != nil {
			return seen, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return seen, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return seen, err
		}
		if err := expect(resp.StatusCode, body); err != nil {
			return seen, err
		}
		seen[version(body)]++
	}
	return seen, nil
}

// expect accepts the demo app's answer to GET /.
func expect(status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d", status)
	}
	if !bytes.HasPrefix(body, []byte("version=")) {
		return fmt.Errorf("body %q: not the demo app", body)
	}
	return nil
}

// version extracts V from the demo app's answer, "version=V generation=G
// pid=P" (served by `baton demo-app`, cmd/baton/demoapp.go).
func version(body []byte) string {
	line, _, _ := strings.Cut(string(body), "\n")
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "version="); ok {
			return v
		}
	}
	return "?"
}

func onlyVersion(seen map[string]int, v string) bool {
	return len(seen) == 1 && seen[v] > 0
}

// formatVersions formats a tally of versions: "v1: 3, v2: 5", or "none".
func formatVersions(seen map[string]int) string {
	keys := slices.Sorted(maps.Keys(seen))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, seen[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
