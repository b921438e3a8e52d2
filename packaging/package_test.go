package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goreleaser/nfpm/v2"
)

// TestConfig: nfpm.yaml uses only the variables configVars sets, parses,
// installs /usr/bin/baton with mode 0755, and marks the files in /etc as
// conffiles.
func TestConfig(t *testing.T) {
	text, err := os.ReadFile("nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vars := configVars("/r", "/s", "/b/baton", "amd64", release{Go: "v1.2.3", Debian: "1.2.3"})
	expanded, err := expandConfig(string(text), vars)
	if err != nil {
		t.Fatal(err)
	}
	config, err := nfpm.ParseWithEnvMapping(strings.NewReader(expanded), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	info, err := config.Get("deb")
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "1.2.3" || info.Arch != "amd64" || info.Maintainer != maintainer {
		t.Errorf("version %q, arch %q, maintainer %q", info.Version, info.Arch, info.Maintainer)
	}
	var bin bool
	for _, c := range info.Contents {
		if c.Destination == packageBaton {
			bin = c.Source == "/b/baton" && c.FileInfo != nil && c.FileInfo.Mode == 0o755
		}
		if strings.HasPrefix(c.Destination, "/etc/") && c.Type != "config" {
			t.Errorf("%s is in /etc but not a conffile (type %q)", c.Destination, c.Type)
		}
		if src, ok := strings.CutPrefix(c.Source, filepath.Join("/r", "packaging")+"/"); ok {
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s: %v", c.Destination, err)
			}
		}
	}
	if !bin {
		t.Errorf("nfpm.yaml does not install the binary at %s with mode 0755", packageBaton)
	}
}

// TestExpandConfigUndefined: an unknown ${NAME} is an error.
func TestExpandConfigUndefined(t *testing.T) {
	if _, err := expandConfig("version: ${VERSION}\narch: ${NO_SUCH}\n", map[string]string{"VERSION": "1"}); err == nil || !strings.Contains(err.Error(), "NO_SUCH") {
		t.Errorf("expandConfig: %v, want an error naming NO_SUCH", err)
	}
}
