package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/schematest"
)

// TestUpgradeJSON: under --json (or BATON_JSON) every upgrade verb prints
// one document on stdout that fits upgrade/schema/report.v1.json, with the
// exit code baton exits with: the verb's report, or the refusal of a
// command line it never ran; help and usage text stay on stderr.
func TestUpgradeJSON(t *testing.T) {
	sch, err := schematest.Load(filepath.Join("..", "..", "upgrade", "schema", "report.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pid")
	os.WriteFile(garbage, []byte("not a pid\n"), 0o644)
	notMaster := filepath.Join(dir, "self.pid")
	os.WriteFile(notMaster, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	none := filepath.Join(dir, "none.pid")
	for _, tc := range []struct {
		name   string
		env    string // NAME=VALUE set for the run
		args   []string
		code   int
		report bool // the verb ran: a report, else a refusal
	}{
		{name: "status-missing", args: []string{"status", "--pidfile", none, "--json"}, code: exitUsage, report: true},
		{name: "status-not-a-master", args: []string{"status", "--pidfile", notMaster, "--json"}, code: exitUsage, report: true},
		{name: "start-garbage", args: []string{"start", "--pidfile", garbage, "--json"}, code: exitUsage, report: true},
		{name: "commit-missing", args: []string{"commit", "--pidfile", none, "--json"}, code: exitUsage, report: true},
		{name: "rollback-env", env: "BATON_JSON=true", args: []string{"rollback", "--pidfile", none}, code: exitUsage, report: true},
		{name: "no-pidfile", args: []string{"start", "--json"}, code: exitUsage},
		{name: "bad-flag-value", args: []string{"start", "--pidfile", none, "--workers", "many", "--json"}, code: exitUsage},
		{name: "unknown-flag", args: []string{"commit", "--json", "--force"}, code: exitUsage},
		{name: "bad-check", args: []string{"status", "--pidfile", none, "--check", "ftp://x", "--json"}, code: exitUsage},
		{name: "bad-flavor", env: "BATON_JSON=1", args: []string{"rollback", "--pidfile", none, "--flavor", "apache"}, code: exitUsage},
		{name: "extra-argument", args: []string{"status", "--json=true", "--pidfile", none, "now"}, code: exitUsage},
		{name: "unknown-verb", args: []string{"restart", "--json"}, code: exitUsage},
		{name: "reload-missing", args: []string{"reload", "--pidfile", none, "--json"}, code: exitUsage, report: true},
		{name: "reload-bad-mode", args: []string{"reload", "--pidfile", none, "--mode", "both", "--json"}, code: exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if name, val, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(name, val)
			}
			var stdout, stderr bytes.Buffer
			argv := append([]string{"baton", "upgrade"}, tc.args...)
			if tc.args[0] == "reload" { // a command of its own, not under upgrade
				argv = append([]string{"baton"}, tc.args...)
			}
			code := runWith(argv, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if err := sch.Validate(stdout.Bytes()); err != nil {
				t.Fatalf("stdout does not fit the schema: %v\n%s", err, stdout.String())
			}
			var doc struct {
				Command  string  `json:"command"`
				ExitCode int     `json:"exit_code"`
				Error    string  `json:"error"`
				State    *string `json:"state"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.ExitCode != code || doc.Command != tc.args[0] || (doc.State != nil) != tc.report {
				t.Errorf("document %+v: want exit_code %d, command %q, a report: %v", doc, code, tc.args[0], tc.report)
			}
			if line := strings.TrimSpace(stderr.String()); !strings.HasSuffix(line, "baton: "+doc.Error) {
				t.Errorf("error %q is not the line on stderr:\n%s", doc.Error, stderr.String())
			}
		})
	}
	t.Run("json-false", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		runWith([]string{"baton", "upgrade", "status", "--json=false", "--pidfile", none}, &stdout, &stderr)
		if bytes.HasPrefix(bytes.TrimSpace(stdout.Bytes()), []byte("{")) {
			t.Errorf("--json=false printed JSON:\n%s", stdout.String())
		}
	})
}
