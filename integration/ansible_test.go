package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnsibleCollection checks the collection in scripts/ansible the way its
// users meet it: built into a tarball and installed with ansible-galaxy, the
// module's documentation read by ansible-doc (which fails on documentation
// it cannot parse), the role's by ansible-doc -t role (its argument specs),
// ansible-lint (production profile) on the collection and on the README's
// playbook, which must resolve the module and pass its options, and the
// module's and the filters' table tests (tests/unit, unittest with Debian's python3 and
// ansible-core).
// ansible-test sanity is not run: it installs its own requirements from
// PyPI into virtual environments.
func TestAnsibleCollection(t *testing.T) {
	t.Parallel() // long and self-contained: see doc.go, Time
	requireTools(t, "/usr/bin/ansible-doc", "/usr/bin/ansible-galaxy", "/usr/bin/ansible-lint", "/usr/bin/python3")
	dir := t.TempDir()
	src := filepath.Join(repoRoot(t), "scripts", "ansible", "ansible_collections", "batonhq", "baton")
	installed := filepath.Join(dir, "collections")
	env := append(os.Environ(), "ANSIBLE_HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"ANSIBLE_COLLECTIONS_PATH="+installed, "ANSIBLE_NOCOLOR=1", "NO_COLOR=1")
	run := func(cwd, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = cwd, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(dir, "/usr/bin/ansible-galaxy", "collection", "build", src, "--output-path", dir)
	tarballs, _ := filepath.Glob(filepath.Join(dir, "batonhq-baton-*.tar.gz"))
	if len(tarballs) != 1 {
		t.Fatalf("ansible-galaxy collection build made %v", tarballs)
	}
	run(dir, "/usr/bin/ansible-galaxy", "collection", "install", "--offline", "-p", installed, tarballs[0])

	var doc map[string]struct {
		Doc struct {
			Options map[string]any `json:"options"`
		} `json:"doc"`
		Examples string         `json:"examples"`
		Return   map[string]any `json:"return"`
	}
	out := run(dir, "/usr/bin/ansible-doc", "--json", "batonhq.baton.baton_upgrade")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("ansible-doc --json: %v\n%s", err, out)
	}
	m := doc["batonhq.baton.baton_upgrade"]
	for _, opt := range []string{"pidfile", "command", "checks", "commit", "force"} {
		if m.Doc.Options[opt] == nil {
			t.Errorf("ansible-doc: the module documents no option %q", opt)
		}
	}
	for _, rv := range []string{"state", "did", "binary_replaced", "old_master", "new_master", "rc", "report"} {
		if m.Return[rv] == nil {
			t.Errorf("ansible-doc: the module documents no return value %q", rv)
		}
	}
	if !strings.Contains(m.Examples, "batonhq.baton.baton_upgrade:") {
		t.Errorf("ansible-doc: the module's examples do not use it:\n%s", m.Examples)
	}
	if out := run(dir, "/usr/bin/ansible-doc", "-t", "role", "batonhq.baton.baton_rollout"); !strings.Contains(out, "baton_rollout_pidfile") {
		t.Errorf("ansible-doc -t role: no baton_rollout_pidfile option:\n%s", out)
	}

	// The README's playbook, linted where the installed collection resolves.
	writeFile(t, filepath.Join(dir, "rollout.yml"), readmePlaybook(t), 0o644)
	lint := []string{"--offline", "--nocolor", "-c", filepath.Join(src, ".ansible-lint")}
	out = run(dir, "/usr/bin/ansible-lint", append(lint, "rollout.yml")...)
	if strings.Contains(out, "Unable to resolve") {
		t.Errorf("ansible-lint did not resolve the collection for the README's playbook:\n%s", out)
	}
	run(src, "/usr/bin/ansible-lint", append(lint, "roles/baton_rollout", "galaxy.yml", "meta", "plugins")...)

	for _, test := range []string{"modules/test_baton_upgrade.py", "filter/test_rollout.py"} {
		unit := exec.Command("/usr/bin/python3", filepath.Join(src, "tests", "unit", "plugins", test), "-v")
		unit.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(repoRoot(t), "scripts", "ansible"), "PYTHONDONTWRITEBYTECODE=1")
		if out, err := unit.CombinedOutput(); err != nil {
			t.Errorf("unit tests %s: %v\n%s", test, err, out)
		}
	}
}

// requireTools skips (with BATON_REQUIRE_PEERS=1, fails) the test when a
// program is missing.
func requireTools(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv(EnvRequirePeers) == "1" {
				t.Fatalf("%s is missing and %s=1: %v", p, EnvRequirePeers, err)
			}
			t.Skipf("%s is not installed (apt-get install ansible-core ansible-lint openssh-server; README); set %s=1 to fail instead", p, EnvRequirePeers)
		}
	}
}
