package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPackagedScripts: packagedScripts lists every file of scripts/'s
// systemd, init.d and default directories, nfpm.yaml ships each, and the
// rewrite leaves none naming /usr/local/bin/baton.
func TestPackagedScripts(t *testing.T) {
	root := filepath.Join("..", "scripts")
	var want []string
	for _, dir := range []string{"systemd", "init.d", "default"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, err := filepath.Rel(root, path)
			want = append(want, filepath.ToSlash(rel))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var listed []string
	for _, s := range packagedScripts {
		listed = append(listed, s.path)
	}
	slices.Sort(want)
	slices.Sort(listed)
	if !slices.Equal(want, listed) {
		t.Errorf("scripts/ has %v, packagedScripts lists %v", want, listed)
	}
	config, err := os.ReadFile("nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range packagedScripts {
		if !strings.Contains(string(config), "src: ${STAGE}/scripts/"+s.path+"\n") {
			t.Errorf("nfpm.yaml does not ship scripts/%s", s.path)
		}
		data, err := os.ReadFile(filepath.Join(root, s.path))
		if err != nil {
			t.Fatal(err)
		}
		got, err := rewriteScript(s.path, data, s.runsBaton)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(got), sourceBaton) {
			t.Errorf("scripts/%s still names %s", s.path, sourceBaton)
		}
		if s.runsBaton && !strings.Contains(string(got), packageBaton) {
			t.Errorf("scripts/%s does not name %s", s.path, packageBaton)
		}
	}
}

// TestRewriteScriptRefuses a file that runs baton but no longer names it
// where the rewrite looks.
func TestRewriteScriptRefuses(t *testing.T) {
	if _, err := rewriteScript("systemd/x.service", []byte("ExecStart=/opt/baton run\n"), true); err == nil {
		t.Error("rewriteScript accepted a unit that does not name " + sourceBaton)
	}
	got, err := rewriteScript("systemd/x.socket", []byte("ListenStream=/run/x.sock\n"), false)
	if err != nil || string(got) != "ListenStream=/run/x.sock\n" {
		t.Errorf("rewriteScript changed a file that does not run baton: %q, %v", got, err)
	}
}

// TestChangelog: the entry is for the package's version, signed by the
// maintainer, with the date format Debian's changelog requires.
func TestChangelog(t *testing.T) {
	r := release{Go: "v1.2.3-rc.1", Debian: "1.2.3~rc.1", Commit: "2bb8d3a1b2c3d4e5f60718293a4b5c6d7e8f9012"}
	got := changelog(r)
	for _, want := range []string{"baton (1.2.3~rc.1) unstable; urgency=medium\n", "  * baton v1.2.3-rc.1.\n", r.Commit,
		"\n -- " + maintainer + "  Mon, 01 Jan 0001 00:00:00 +0000\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("changelog lacks %q:\n%s", want, got)
		}
	}
}
