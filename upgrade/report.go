package upgrade

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// ReportSchemaVersion is the schema_version of a Report's JSON form, the
// `--json` output of every `baton upgrade` verb, which
// upgrade/schema/report.v1.json describes. It changes only when a field is
// removed, renamed or changes its type or meaning; a new field does not
// change it.
const ReportSchemaVersion = 1

// Step is one line of progress. In JSON, Elapsed is "elapsed_seconds".
type Step struct {
	Name    string        `json:"step"`
	Msg     string        `json:"message"`
	Elapsed time.Duration `json:"-"` // since the command began
}

func (s Step) String() string {
	return fmt.Sprintf("[%6.2fs] %s: %s", s.Elapsed.Seconds(), s.Name, s.Msg)
}

// MarshalJSON encodes Elapsed in seconds.
func (s Step) MarshalJSON() ([]byte, error) {
	type plain Step
	return json.Marshal(struct {
		plain
		Seconds float64 `json:"elapsed_seconds"`
	}{plain(s), s.Elapsed.Seconds()})
}

// Health is the result of one check.
type Health struct {
	Check string `json:"check"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Report is the outcome of a command, for people and for --json. Its JSON
// form (MarshalJSON) begins with "schema_version" (ReportSchemaVersion),
// gives every list as an array, empty rather than null, and durations in
// seconds.
type Report struct {
	Command    string     `json:"command"`
	Pidfile    string     `json:"pidfile"`
	Flavor     string     `json:"flavor,omitempty"`
	State      State      `json:"state"`
	Old        *MasterObs `json:"old,omitempty"`
	New        *MasterObs `json:"new,omitempty"`
	Files      []PidObs   `json:"pidfiles"`
	Journal    *Journal   `json:"journal,omitempty"`
	LockHolder int        `json:"lock_holder,omitempty"`
	Health     []Health   `json:"health"`
	Steps      []Step     `json:"steps"`
	Findings   []string   `json:"findings"`
	Warnings   []string   `json:"warnings"`
	Advice     string     `json:"advice,omitempty"`
	Error      string     `json:"error,omitempty"`
	// Interrupted lists the interrupt signals the command received (set
	// by the CLI): one means it aborted safely, two that it stopped at once.
	Interrupted []string `json:"interrupted"`
	// ExitCode is the exit status of the command (set by the CLI).
	ExitCode int `json:"exit_code"`
	// Elapsed is the command's duration; in JSON "elapsed_seconds".
	Elapsed time.Duration `json:"-"`
}

// MarshalJSON encodes r with its schema version first and its duration in
// seconds; every nil slice in r, at any depth, is encoded as [].
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		SchemaVersion int `json:"schema_version"`
		plain
		Seconds float64 `json:"elapsed_seconds"`
	}{ReportSchemaVersion, plain(filled(reflect.ValueOf(r)).Interface().(Report)), r.Elapsed.Seconds()})
}

// filled is a copy of v in which every nil slice reachable through
// exported fields, pointers and slices is an empty one, so that JSON has []
// where a list is meant and never null. v itself is left as it is.
func filled(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(filled(v.Elem()))
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				c.Field(i).Set(filled(v.Field(i)))
			}
		}
		return c
	case reflect.Slice:
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(filled(v.Index(i)))
		}
		return c
	}
	return v
}
