package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/schematest"
	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// reportSchema is upgrade/schema/report.v1.json, compiled once.
var reportSchema = sync.OnceValues(func() (*schematest.Schema, error) {
	return schematest.Load(filepath.Join("schema", "report.v1.json"))
})

// checkReportJSON encodes r as --json does and validates it against the
// schema: no null anywhere, the schema version first.
func checkReportJSON(t *testing.T, r *Report) []byte {
	t.Helper()
	sch, err := reportSchema()
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(data); err != nil {
		t.Errorf("report %s does not fit the schema: %v\n%s", r.Command, err, data)
	}
	if bytes.Contains(data, []byte("null")) {
		t.Errorf("null in the report:\n%s", data)
	}
	if !bytes.HasPrefix(data, []byte("{\n  \"schema_version\": 1,")) {
		t.Errorf("the report does not begin with its schema version:\n%s", data)
	}
	return data
}

// fullReport sets every field of a Report, down to a baton master's status.
func fullReport() *Report {
	at := time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC)
	id := procs.Identity{PID: 100, Start: 4242}
	st := &statusfile.Master{PID: 100, Start: 4242, Parent: 90, Generation: 2, Ready: true, UpgradePending: true,
		Draining: true, CrashLoop: true, Binary: "/usr/bin/baton", Dir: "/srv", Goroutines: 12, Updated: at,
		Workers:   []statusfile.Worker{{PID: 101, Generation: 2, State: "ready", Restarts: 1}, {Generation: 2, State: "backoff"}},
		Listeners: []statusfile.Listener{{Name: "web", Network: "tcp", Addr: "127.0.0.1:80", Inode: 7, FD: 3}}}
	m := &MasterObs{ID: id, PPID: 1, UID: 33, Flavor: "baton", Binary: "/usr/bin/baton", BinaryGone: true, Dir: "/",
		Cmdline: []string{"baton", "run"}, Workers: []int{101}, ChildMasters: []int{102},
		Listeners: []procs.Listener{{Inode: 7, FD: 3, Network: "unix", Addr: "/run/app.sock"}}, Status: st}
	return &Report{Command: "rollback", Pidfile: "/run/app.pid", Flavor: "baton", State: Inconsistent, Old: m, New: m,
		Files: []PidObs{{Path: "/run/app.pid", Exists: true, PID: 100, Master: m}, {Path: "/run/app.pid.oldbin", Exists: true, Err: "malformed"}},
		Journal: &Journal{State: RollingBack, Flavor: "baton", Pidfile: "/run/app.pid", Old: id, New: id, OldByUpgrade: true,
			OldWorkers: 2, Workers: 2, DrainedTo: 0, DrainedWorkers: []procs.Identity{id}, NewWorkers: []procs.Identity{id},
			Respawned: 1, RespawnBase: 1, Started: at, Updated: at,
			Transitions: []Transition{{At: at, From: Drained, Event: EvRollback, To: RollingBack, By: 77, Note: "why"}}},
		LockHolder: 77, Health: []Health{{Check: "tcp://127.0.0.1:80", OK: false, Error: "refused"}},
		Steps:    []Step{{Name: "rollback", Msg: "sent", Elapsed: 1500 * time.Millisecond}},
		Findings: []string{"found"}, Warnings: []string{"careful"}, Advice: "run status", Error: "failed",
		Interrupted: []string{"SIGINT", "SIGTERM"}, ExitCode: 4, Elapsed: 2250 * time.Millisecond}
}

// TestReportJSON: an empty report and one with every field set fit the
// schema; lists are [] where nil, durations in seconds.
func TestReportJSON(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		data := checkReportJSON(t, &Report{Command: "status"})
		for _, list := range []string{"pidfiles", "health", "steps", "findings", "warnings", "interrupted"} {
			if !bytes.Contains(data, []byte(`"`+list+`": []`)) {
				t.Errorf("%s is not []:\n%s", list, data)
			}
		}
	})
	t.Run("full", func(t *testing.T) {
		r := fullReport()
		data := checkReportJSON(t, r)
		var got struct {
			Elapsed float64 `json:"elapsed_seconds"`
			Steps   []struct {
				Elapsed float64 `json:"elapsed_seconds"`
			} `json:"steps"`
		}
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if got.Elapsed != 2.25 || len(got.Steps) != 1 || got.Steps[0].Elapsed != 1.5 {
			t.Errorf("durations %+v, want 2.25 and 1.5 seconds", got)
		}
		if r.Old.ChildMasters == nil || r.Steps[0].Elapsed != 1500*time.Millisecond {
			t.Errorf("encoding changed the report: %+v", r)
		}
	})
	t.Run("nil-lists-deep", func(t *testing.T) {
		r := fullReport()
		r.Old = &MasterObs{Status: &statusfile.Master{PID: 1}}
		r.Journal = &Journal{}
		r.Files = []PidObs{{Path: "/p", Master: &MasterObs{}}}
		checkReportJSON(t, r)
		if r.Old.Workers != nil || r.Journal.Transitions != nil {
			t.Errorf("encoding changed the report: %+v", r)
		}
	})
	t.Run("schema-rejects", func(t *testing.T) {
		sch, err := reportSchema()
		if err != nil {
			t.Fatal(err)
		}
		good, _ := json.Marshal(fullReport())
		for name, bad := range map[string]string{
			"null-list":     strings.Replace(string(good), `"findings":["found"]`, `"findings":null`, 1),
			"unknown-field": strings.Replace(string(good), `"pidfile":`, `"pid_file":"x","pidfile":`, 1),
			"nanoseconds":   strings.Replace(string(good), `"elapsed_seconds":2.25`, `"elapsed_ns":2250000000`, 1),
			"old-version":   strings.Replace(string(good), `"schema_version":1`, `"schema_version":0`, 1),
			"bad-time":      strings.Replace(string(good), `"2025-03-01T12:00:00.0000005Z"`, `"yesterday"`, 1),
		} {
			if bad == string(good) {
				t.Fatalf("%s: the replacement did not apply to %s", name, good)
			}
			if sch.Validate([]byte(bad)) == nil {
				t.Errorf("%s: the schema accepts %s", name, bad)
			}
		}
	})
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

// TestReportSchemaReal validates the reports of real verbs against real
// masters (the fake nginx-like helper): status, start (parked), status,
// rollback, start --commit, and a status of a pid file naming nothing.
func TestReportSchemaReal(t *testing.T) {
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
