// Package schema_test checks upgrade/schema/report.v1.json, the schema of
// `baton upgrade ... --json`, against upgrade.Report values: one with every
// field set, one with nothing set, and nil lists at every depth. The CLI's
// tests and the integration tests validate real output against it.
package schema_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/schematest"
	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// reportSchema is report.v1.json, compiled once.
var reportSchema = sync.OnceValues(func() (*schematest.Schema, error) { return schematest.Load("report.v1.json") })

// checkReport encodes r as --json does and validates it.
func checkReport(t *testing.T, r *upgrade.Report) []byte {
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
	if strings.Contains(string(data), "null") {
		t.Errorf("null in the report:\n%s", data)
	}
	return data
}

// fullReport sets every field of a Report, down to a baton master's status.
func fullReport() *upgrade.Report {
	at := time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC)
	id := procs.Identity{PID: 100, Start: 4242}
	st := &statusfile.Master{PID: 100, Start: 4242, Parent: 90, Generation: 2, Ready: true, UpgradePending: true,
		Draining: true, CrashLoop: true, Binary: "/usr/bin/baton", Dir: "/srv", Goroutines: 12, Updated: at,
		Workers:   []statusfile.Worker{{PID: 101, Generation: 2, State: "ready", Restarts: 1}, {Generation: 2, State: "backoff"}},
		Listeners: []statusfile.Listener{{Name: "web", Network: "tcp", Addr: "127.0.0.1:80", Inode: 7, FD: 3}}}
	m := &upgrade.MasterObs{ID: id, PPID: 1, UID: 33, Flavor: "baton", Binary: "/usr/bin/baton", BinaryGone: true, Dir: "/",
		Cmdline: []string{"baton", "run"}, Workers: []int{101}, ChildMasters: []int{102},
		Listeners: []procs.Listener{{Inode: 7, FD: 3, Network: "unix", Addr: "/run/app.sock"}}, Status: st}
	return &upgrade.Report{Command: "rollback", Pidfile: "/run/app.pid", Flavor: "baton", State: upgrade.Inconsistent, Old: m, New: m,
		Files: []upgrade.PidObs{{Path: "/run/app.pid", Exists: true, PID: 100, Master: m}, {Path: "/run/app.pid.oldbin", Exists: true, Err: "malformed"}},
		Journal: &upgrade.Journal{State: upgrade.RollingBack, Flavor: "baton", Pidfile: "/run/app.pid", Old: id, New: id, OldByUpgrade: true,
			OldWorkers: 2, Workers: 2, DrainedTo: 0, DrainedWorkers: []procs.Identity{id}, NewWorkers: []procs.Identity{id},
			Respawned: 1, RespawnBase: 1, Started: at, Updated: at,
			Transitions: []upgrade.Transition{{At: at, From: upgrade.Drained, Event: upgrade.EvRollback, To: upgrade.RollingBack, By: 77, Note: "why"}}},
		LockHolder: 77, Health: []upgrade.Health{{Check: "tcp://127.0.0.1:80", OK: false, Error: "refused"}},
		Steps:    []upgrade.Step{{Name: "rollback", Msg: "sent", Elapsed: 1500 * time.Millisecond}},
		Findings: []string{"found"}, Warnings: []string{"careful"}, Advice: "run status", Error: "failed",
		Interrupted: []string{"SIGINT", "SIGTERM"}, ExitCode: 4, Elapsed: 2250 * time.Millisecond}
}

// TestReportJSON: an empty report and one with every field set fit the
// schema; lists are [] where nil, durations in seconds; the schema refuses
// what the interface rules out.
func TestReportJSON(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		data := checkReport(t, &upgrade.Report{Command: "status"})
		for _, list := range []string{"pidfiles", "health", "steps", "findings", "warnings", "interrupted"} {
			if !strings.Contains(string(data), `"`+list+`": []`) {
				t.Errorf("%s is not []:\n%s", list, data)
			}
		}
	})
	t.Run("full", func(t *testing.T) {
		r := fullReport()
		data := checkReport(t, r)
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
	})
	t.Run("nil-lists-deep", func(t *testing.T) {
		r := fullReport()
		r.Old = &upgrade.MasterObs{Status: &statusfile.Master{PID: 1}}
		r.Journal = &upgrade.Journal{}
		r.Files = []upgrade.PidObs{{Path: "/p", Master: &upgrade.MasterObs{}}}
		checkReport(t, r)
		if r.Old.Workers != nil || r.Journal.Transitions != nil {
			t.Errorf("encoding changed the report: %+v", r)
		}
	})
	t.Run("refusal", func(t *testing.T) {
		sch, err := reportSchema()
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate([]byte(`{"schema_version": 1, "command": "start", "exit_code": 2, "error": "Required flag \"pidfile\" not set"}`)); err != nil {
			t.Errorf("a refusal does not fit: %v", err)
		}
		for _, bad := range []string{
			`{"schema_version": 1, "command": "start", "exit_code": 0, "error": "x"}`,
			`{"schema_version": 1, "command": "start", "exit_code": 2, "error": ""}`,
			`{"schema_version": 1, "command": "start", "exit_code": 2}`,
		} {
			if sch.Validate([]byte(bad)) == nil {
				t.Errorf("the schema accepts the refusal %s", bad)
			}
		}
	})
	t.Run("rejects", func(t *testing.T) {
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
			"bad-state":     strings.Replace(string(good), `"state":"inconsistent"`, `"state":"confused"`, 1),
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

// TestSchemaNames: the schema's states and events are upgrade's, all of
// them, so that a new one cannot reach --json unnoticed.
func TestSchemaNames(t *testing.T) {
	var schema struct {
		Defs map[string]struct {
			Enum []any `json:"enum"`
		} `json:"$defs"`
	}
	data, err := os.ReadFile("report.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	var states, events []any
	for s := upgrade.State(0); s.Valid(); s++ {
		states = append(states, s.String())
	}
	for e := upgrade.Event(0); ; e++ {
		name, err := e.MarshalText() // an error past the last event
		if err != nil {
			break
		}
		events = append(events, string(name))
	}
	if got := schema.Defs["state"].Enum; !slices.Equal(got, states) {
		t.Errorf("schema states %q, upgrade's %q", got, states)
	}
	if got := schema.Defs["event"].Enum; !slices.Equal(got, events) {
		t.Errorf("schema events %q, upgrade's %q", got, events)
	}
}
