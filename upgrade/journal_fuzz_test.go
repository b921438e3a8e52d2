package upgrade

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzJournal: the journal decoder never panics, and whatever it accepts
// round-trips: encoding it and decoding that gives the same encoding again,
// so a journal baton read and rewrote says what it said.
func FuzzJournal(f *testing.F) {
	for _, seed := range []string{
		// What WriteJournal writes for an upgrade parked in Drained.
		`{"state":"drained","flavor":"nginx","pidfile":"/run/nginx.pid","old":{"pid":10,"start":100},"new":{"pid":11,"start":101},` +
			`"old_workers":2,"workers":2,"drained_to":0,"drained_workers":[{"pid":12,"start":102}],` +
			`"started":"2026-12-02T17:00:00Z","updated":"2026-12-02T17:00:01.5+01:00",` +
			`"transitions":[{"at":"2026-12-02T17:00:00Z","from":"idle","event":"spawn","to":"spawning","by":9,"note":"USR2 to 10@100"}]}`,
		// The smallest journal, and null: both decode to the zero journal.
		`{}`,
		`null`,
		// An unknown state or event, a negative pid, a wrong type.
		`{"state":"exploded"}`,
		`{"transitions":[{"event":"teleport"}]}`,
		`{"old":{"pid":-1,"start":0}}`,
		`{"workers":"two"}`,
		// Trailing data after the object, and a truncated file.
		`{"state":"idle"} {"state":"drained"}`,
		`{"state":"idle","old":{"pid":1`,
		// Duplicate keys: the last one wins in encoding/json.
		`{"state":"idle","state":"drained"}`,
		// A pid beyond any int, a time out of range.
		`{"new":{"pid":99999999999999999999}}`,
		`{"started":"10000-01-01T00:00:00Z"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := decodeJournal(data)
		if err != nil {
			if j != nil {
				t.Fatalf("decodeJournal returned a journal with error %v", err)
			}
			return
		}
		first, err := json.MarshalIndent(j, "", "  ")
		if err != nil {
			// Only what the decoder accepted can be encoded: a failure
			// here is a value it should have refused.
			t.Fatalf("an accepted journal does not encode: %v\n%q", err, data)
		}
		back, err := decodeJournal(first)
		if err != nil {
			t.Fatalf("the encoding of an accepted journal is refused: %v\n%s", err, first)
		}
		second, err := json.MarshalIndent(back, "", "  ")
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the journal (%v):\n%s\n---\n%s", err, first, second)
		}
	})
}
