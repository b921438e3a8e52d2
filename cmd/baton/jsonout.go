package main

import (
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/upgrade"
)

// jsonOutput is the one JSON document an upgrade verb run with --json
// prints on stdout: the verb's report (upgrade.Report, exit code
// included), or, when the command line was refused before the verb ran, a
// refusal. Both are described by upgrade/schema/report.v1.json. Help and
// usage text go to stderr meanwhile, so that stdout holds the document
// alone.
type jsonOutput struct {
	w       io.Writer
	verb    string // as given, "" when none was
	written bool
}

// refusal is the document of a command line refused before the verb ran.
type refusal struct {
	SchemaVersion int    `json:"schema_version"`
	Command       string `json:"command"`
	ExitCode      int    `json:"exit_code"`
	Error         string `json:"error"`
}

// jsonOutputKey is where runIO leaves the jsonOutput in cli.App.Metadata.
const jsonOutputKey = "json-output"

// newJSONOutput returns the output of args if they run `baton upgrade` or
// `baton reload` with --json (or BATON_JSON) given, else nil. It reads the arguments
// itself: a refused command line may never reach the flag's parsing.
func newJSONOutput(args []string, w io.Writer) *jsonOutput {
	if len(args) < 2 || args[1] != "upgrade" && args[1] != "reload" {
		return nil
	}
	on, _ := strconv.ParseBool(os.Getenv(envVars("json")[0]))
	j := &jsonOutput{w: w}
	if args[1] == "reload" { // `baton reload` is a verb of its own
		j.verb = "reload"
	}
	for i, a := range args[2:] {
		if a == "--" {
			break
		}
		if i == 0 && j.verb == "" && !strings.HasPrefix(a, "-") {
			j.verb = a
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "json" {
			on = true
			if hasVal {
				on, _ = strconv.ParseBool(val)
			}
		}
	}
	if !on {
		return nil
	}
	return j
}

// jsonOut is the jsonOutput runIO set up, or one on the app's writer.
func jsonOut(c *cli.Context) *jsonOutput {
	if j, ok := c.App.Metadata[jsonOutputKey].(*jsonOutput); ok {
		return j
	}
	return &jsonOutput{w: c.App.Writer, verb: c.Command.Name}
}

// report prints rep with the exit code and the error err means.
func (j *jsonOutput) report(rep *upgrade.Report, err error) {
	if rep == nil {
		return // refused: runIO prints the refusal
	}
	rep.ExitCode = errorCode(err)
	if err != nil {
		rep.Error = err.Error()
	}
	j.encode(rep)
}

// refused prints the refusal of err unless a report was printed.
func (j *jsonOutput) refused(err error) {
	if j.written || err == nil {
		return
	}
	j.encode(refusal{SchemaVersion: upgrade.ReportSchemaVersion, Command: j.verb, ExitCode: errorCode(err), Error: err.Error()})
}

func (j *jsonOutput) encode(v any) {
	enc := json.NewEncoder(j.w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	j.written = true
}
