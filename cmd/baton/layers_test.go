package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayers keeps the imports pointing down: cmd → upgrade, upgrade/master →
// upgrade/statusfile, pidfile, procs; baton's master never imports the
// orchestrator.
// Each package may import only the module's packages listed for it, and only
// cmd/baton may import the CLI library.
func TestLayers(t *testing.T) {
	const mod = "github.com/batonhq/baton/"
	allowed := map[string][]string{
		"pidfile":             nil,
		"procs":               nil,
		"upgrade/load":        nil,
		"upgrade/statusfile":  nil,
		"internal/schematest": nil,
		"upgrade":             {"upgrade/statusfile", "pidfile", "procs"},
		"upgrade/master":      {"upgrade/statusfile", "pidfile", "procs"},
		demoPackage:           {"upgrade", "upgrade/load", "upgrade/statusfile", "pidfile", "procs"},
	}
	for pkg, ok := range allowed {
		t.Run(strings.ReplaceAll(pkg, "/", "-"), func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", mod+pkg).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				if dep == "github.com/urfave/cli/v2" {
					t.Errorf("%s imports the CLI library; only cmd/baton may", pkg)
				}
				rel, inModule := strings.CutPrefix(dep, mod)
				if !inModule || rel == pkg {
					continue
				}
				if !slices.Contains(ok, rel) {
					t.Errorf("%s imports %s; allowed: %v", pkg, rel, ok)
				}
			}
		})
	}
}

// TestValidatorOnlyInTests: the JSON Schema validator is for tests; the
// baton binary does not link it.
func TestValidatorOnlyInTests(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/batonhq/baton/cmd/baton").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "jsonschema") || strings.HasSuffix(dep, "/internal/schematest") {
			t.Errorf("baton links %s", dep)
		}
	}
}
