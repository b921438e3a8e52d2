package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// The schema itself is checked against Report values in upgrade/schema, a
// test package of its own: the validator's package initialisation costs
// tens of milliseconds (hundreds under -race) in every process that links
// it, and this package's tests re-execute their binary as every fake
// master and worker, under spawn timeouts of a second or two.

// checkReportJSON encodes r as --json does and checks what the schema
// cannot see missing from a real report: no null anywhere, the schema
// version first, every list there, durations in seconds.
func checkReportJSON(t *testing.T, r *Report) {
	t.Helper()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("null")) || !bytes.HasPrefix(data, []byte("{\n  \"schema_version\": 1,")) {
		t.Errorf("report %s: a null, or no schema_version first:\n%s", r.Command, data)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, list := range []string{"pidfiles", "health", "steps", "findings", "warnings", "interrupted"} {
		if _, ok := doc[list].([]any); !ok {
			t.Errorf("report %s: %s is %v, want a list", r.Command, list, doc[list])
		}
	}
	if s, ok := doc["elapsed_seconds"].(float64); !ok || s != r.Elapsed.Seconds() {
		t.Errorf("report %s: elapsed_seconds %v, want %v", r.Command, doc["elapsed_seconds"], r.Elapsed.Seconds())
	}
}

// TestReportJSONFields walks Report's types: a list is never omitempty
// (it is always there, [] when empty) and a duration is never encoded as
// Go's nanoseconds (its owner's MarshalJSON gives it in seconds).
func TestReportJSONFields(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ == reflect.TypeFor[time.Time]() {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			if !f.IsExported() || tag == "-" {
				continue
			}
			p := path + "." + f.Name
			if f.Type.Kind() == reflect.Slice && strings.HasSuffix(tag, ",omitempty") {
				t.Errorf("%s: a list tagged omitempty", p)
			}
			if f.Type == reflect.TypeFor[time.Duration]() {
				t.Errorf("%s: a duration in nanoseconds; tag it \"-\" and give it in seconds", p)
			}
			walk(p, f.Type)
		}
	}
	walk("Report", reflect.TypeFor[Report]())
	if !seen[reflect.TypeFor[statusfile.Master]()] || !seen[reflect.TypeFor[Transition]()] {
		t.Errorf("the walk missed types: %v", seen)
	}
}

// TestReportJSONReal checks the JSON of the reports of real verbs against
// real masters (the fake nginx-like helper): status, start (parked),
// status, rollback, start --commit, and a status of a pid file naming
// nothing.
func TestReportJSONReal(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_VERSION=v2"}})
	ctx := testCtx(t)
	for _, step := range []struct {
		name string
		verb func(*Machine, context.Context) (*Report, error)
		mod  func(*Options)
		want State
	}{
		{name: "status", verb: (*Machine).Status, want: Idle},
		{name: "start", verb: (*Machine).Start, want: Drained},
		{name: "status-parked", verb: (*Machine).Status, want: Drained},
		{name: "rollback", verb: (*Machine).Rollback, want: RolledBack},
		{name: "start-commit", verb: (*Machine).Start, mod: func(o *Options) { o.Commit = true }, want: Committed},
		{name: "status-committed", verb: (*Machine).Status, want: Committed},
	} {
		rep, err := step.verb(newMachine(t, f, step.mod), ctx)
		if err != nil || rep.State != step.want {
			t.Fatalf("%s: state %v, err %v; want %s", step.name, rep.State, err, step.want)
		}
		checkReportJSON(t, rep)
	}
	rep, err := newMachine(t, f, func(o *Options) { o.Pidfile = filepath.Join(t.TempDir(), "none.pid") }).Status(ctx)
	if err == nil {
		t.Fatalf("status of a missing pid file: %+v", rep)
	}
	rep.Error = err.Error()
	checkReportJSON(t, rep)
}
