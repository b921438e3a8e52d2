package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
)

// configVars are the ${...} variables of nfpm.yaml for one package.
func configVars(root, stage, bin, arch string, v release) map[string]string {
	return map[string]string{
		"VERSION":    v.Debian,
		"ARCH":       arch,
		"BINARY":     bin,
		"STAGE":      stage,
		"DEBIAN":     filepath.Join(root, "packaging", "debian"),
		"MTIME":      v.Time.Format(time.RFC3339),
		"MAINTAINER": maintainer,
	}
}

// expandConfig replaces nfpm.yaml's ${NAME}s with vars; a name vars lacks is
// an error, not an empty string.
func expandConfig(text string, vars map[string]string) (string, error) {
	var missing []string
	out := os.Expand(text, func(name string) string {
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("nfpm.yaml uses undefined variables: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// writePackage packages packaging/nfpm.yaml for arch with nfpm's deb
// packager and returns the path of the .deb it wrote to out.
func writePackage(root, stage, bin, arch string, v release, out string) (string, error) {
	text, err := os.ReadFile(filepath.Join(root, "packaging", "nfpm.yaml"))
	if err != nil {
		return "", err
	}
	expanded, err := expandConfig(string(text), configVars(root, stage, bin, arch, v))
	if err != nil {
		return "", err
	}
	// The text is expanded already; nfpm's own pass must find nothing.
	config, err := nfpm.ParseWithEnvMapping(strings.NewReader(expanded), func(string) string { return "" })
	if err != nil {
		return "", fmt.Errorf("nfpm.yaml: %w", err)
	}
	info, err := config.Get("deb")
	if err != nil {
		return "", fmt.Errorf("nfpm.yaml: %w", err)
	}
	info = nfpm.WithDefaults(info)
	packager := deb.Default
	path := filepath.Join(out, packager.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	info.Target = path
	if err := packager.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("nfpm: %w", err)
	}
	return path, f.Close()
}
