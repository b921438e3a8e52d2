package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
)

// moduleLicense is what the copyright file says of a module linked into
// baton: its holder and its license, by Debian's short name.
type moduleLicense struct {
	copyright string
	license   string // Expat, BSD-2-clause, BSD-3-clause or Apache-2.0
}

// moduleLicenses names the license of every module the binary links; the
// texts come from the modules themselves. A module missing here fails the
// build (copyright), so a new dependency cannot ship unlicensed.
var moduleLicenses = map[string]moduleLicense{
	"github.com/coreos/go-systemd/v22":   {copyright: "2018 CoreOS, Inc", license: "Apache-2.0"},
	"github.com/cpuguy83/go-md2man/v2":   {copyright: "2014 Brian Goff", license: "Expat"},
	"github.com/russross/blackfriday/v2": {copyright: "2011 Russ Ross", license: "BSD-2-clause"},
	"github.com/urfave/cli/v2":           {copyright: "2022 urfave/cli maintainers", license: "Expat"},
	"github.com/xrash/smetrics":          {copyright: "2016 Felipe da Cunha Gonçalves", license: "Expat"},
	"golang.org/x/sys":                   {copyright: "2009 The Go Authors", license: "BSD-3-clause"},
}

// commonLicenses are the licenses Debian ships in /usr/share/common-licenses,
// which a copyright file names instead of quoting.
var commonLicenses = []string{"Apache-2.0"}

// licenseFiles are the names a module's license text may have.
var licenseFiles = []string{"LICENSE", "LICENSE.md", "LICENSE.txt", "NOTICE"}

// copyright is the package's copyright file (Debian's machine-readable
// format): baton's own paragraph, then the Go standard library and every
// module linked into bin, each with the license text it ships.
func copyright(ctx context.Context, root, bin string) ([]byte, error) {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(`Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: baton
Upstream-Contact: https://github.com/batonhq/baton/issues
Source: https://github.com/batonhq/baton

Files: *
Copyright: the baton authors
License: no-license-granted
 The baton repository carries no license file yet: this package grants no
 license to baton's own code beyond what its repository grants. The Go
 standard library and the modules below are built into /usr/bin/baton
 under their own licenses.
`)
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %w", err)
	}
	text, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "LICENSE"))
	if err != nil {
		return nil, fmt.Errorf("the Go license: %w", err)
	}
	writeFiles(&b, "go/*", "2009 The Go Authors", "BSD-3-clause",
		"The Go standard library and runtime ("+info.GoVersion+"), linked into /usr/bin/baton.", string(text))
	dirs, err := moduleDirs(ctx, root, info.Deps)
	if err != nil {
		return nil, err
	}
	for _, dep := range info.Deps {
		l, ok := moduleLicenses[dep.Path]
		if !ok {
			return nil, fmt.Errorf("baton links %s, which packaging/copyright.go's moduleLicenses does not name: add its copyright and license", dep.Path)
		}
		text, err := licenseText(dirs[dep.Path], l.license)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dep.Path, err)
		}
		writeFiles(&b, "vendor/"+dep.Path+"/*", l.copyright, l.license,
			"Module "+dep.Path+" "+dep.Version+", linked into /usr/bin/baton.", text)
	}
	return []byte(b.String()), nil
}

// writeFiles writes one Files paragraph. A license Debian ships is named
// by its path; text, the license or for those the NOTICE, is quoted.
func writeFiles(b *strings.Builder, files, copyright, license, comment, text string) {
	fmt.Fprintf(b, "\nFiles: %s\nCopyright: %s\nComment: %s\nLicense: %s\n", files, copyright, comment, license)
	if slices.Contains(commonLicenses, license) {
		fmt.Fprintf(b, " On Debian systems the full text of the %s license is in\n /usr/share/common-licenses/%s.\n", license, license)
	}
	if strings.TrimSpace(text) == "" {
		return
	}
	if slices.Contains(commonLicenses, license) {
		b.WriteString(" .\n")
	}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if l = strings.TrimRight(l, " \t"); l == "" {
			l = "."
		}
		b.WriteString(" " + l + "\n")
	}
}

// licenseText is the module's license file, or for a license Debian ships,
// its NOTICE (empty without one).
func licenseText(dir, license string) (string, error) {
	for _, name := range licenseFiles {
		isNotice := name == "NOTICE"
		if isNotice != slices.Contains(commonLicenses, license) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		return string(data), err
	}
	if slices.Contains(commonLicenses, license) {
		return "", nil
	}
	return "", fmt.Errorf("no license file (%s) in %s", strings.Join(licenseFiles, ", "), dir)
}

// moduleDirs finds each module's directory in the module cache.
func moduleDirs(ctx context.Context, root string, deps []*debug.Module) (map[string]string, error) {
	args := []string{"mod", "download", "-json"}
	for _, d := range deps {
		args = append(args, d.Path+"@"+d.Version)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download: %w", err)
	}
	dirs := map[string]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var m struct{ Path, Dir string }
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go mod download: %w", err)
		}
		dirs[m.Path] = m.Dir
	}
	return dirs, nil
}
