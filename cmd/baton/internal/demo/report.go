package demo

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Step is one step of the demo as the report shows it.
type Step struct {
	Name    string        `json:"name"`
	Command string        `json:"command,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	OK      bool          `json:"ok"`
	Note    string        `json:"note"`
}

// Report is what the demo found. Its JSON form is what `baton demo --json`
// prints and what the end-to-end test asserts.
type Report struct {
	Addr        string         `json:"addr"`
	Workers     int            `json:"workers"`
	Steps       []Step         `json:"steps"`
	Served      int            `json:"served"`
	Failed      int            `json:"failed"`
	Races       int            `json:"races"`
	Failures    map[string]int `json:"failures,omitempty"`
	Samples     []string       `json:"samples,omitempty"`
	ByVersion   map[string]int `json:"by_version"`
	Load        []string       `json:"load"`
	RolledBack  bool           `json:"rolled_back"`
	Final       string         `json:"final_version"`
	FinalMaster int            `json:"final_master"`
	Stopped     int            `json:"processes_stopped"`
	Left        []int          `json:"processes_left"`
	Elapsed     time.Duration  `json:"elapsed_ns"`
	Error       string         `json:"error,omitempty"`
}

// WriteText writes the report for people to w, in one write.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nreport (http://%s/, %d workers, %s in all)\n", r.Addr, r.Workers, dur(r.Elapsed))
	for _, st := range r.Steps {
		mark := "ok  "
		if !st.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %-42s %8s  %s\n", mark, st.Name, dur(st.Elapsed), st.Note)
	}
	fmt.Fprintf(&b, "  requests served:   %d (%s)\n", r.Served, formatVersions(r.ByVersion))
	fmt.Fprintf(&b, "  requests failed:   %d", r.Failed)
	if r.Failed > 0 {
		fmt.Fprintf(&b, " %v, e.g. %q", r.Failures, r.Samples)
	}
	fmt.Fprintf(&b, "\n  keep-alive races:  %d (idle connections closed by a retiring generation; retried, as browsers and Go's net/http do)\n", r.Races)
	for _, l := range r.Load {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	final := r.Final
	if final == "" {
		final = "unknown"
	}
	fmt.Fprintf(&b, "  serving at the end: %s (master %d)\n", final, r.FinalMaster)
	fmt.Fprintf(&b, "  processes left:    %d\n", len(r.Left))
	if r.Error != "" {
		fmt.Fprintf(&b, "FAILED: %s\n", r.Error)
	} else {
		b.WriteString("PASS: zero failed requests, v2 committed, broken v3 rolled back automatically\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// dur formats a step's time: "947ms", "4.27s".
func dur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}
