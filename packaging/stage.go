package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Where baton is: in scripts/ as a source install puts it (go install, or
// install -m 0755 baton /usr/local/bin), in the package where Debian puts
// it.
const (
	sourceBaton  = "/usr/local/bin/baton"
	packageBaton = "/usr/bin/baton"
)

// maintainer is the package's Maintainer and the changelog's signer.
const maintainer = "baton maintainers <batonhq@users.noreply.github.com>"

// packagedScripts are the files of scripts/ the package ships (nfpm.yaml
// names each as ${STAGE}/scripts/PATH), and whether each must name
// sourceBaton, which the package rewrites to packageBaton: a unit that runs
// baton but no longer names /usr/local/bin/baton would otherwise ship
// running a binary the package does not install.
var packagedScripts = []struct {
	path      string
	runsBaton bool
}{
	{path: "systemd/baton@.service", runsBaton: true},
	{path: "systemd/baton@.socket"},
	{path: "systemd/nginx.service.d/baton-upgrade.conf", runsBaton: true},
	{path: "systemd/nginx.service.d/baton-hardening.conf"},
	{path: "init.d/baton", runsBaton: true},
	{path: "default/nginx", runsBaton: true},
	{path: "default/baton-app", runsBaton: true},
}

// rewriteScript is data with every sourceBaton as packageBaton; it fails
// when runsBaton and there is none.
func rewriteScript(path string, data []byte, runsBaton bool) ([]byte, error) {
	n := bytes.Count(data, []byte(sourceBaton))
	if runsBaton && n == 0 {
		return nil, fmt.Errorf("scripts/%s does not name %s: update packagedScripts", path, sourceBaton)
	}
	return bytes.ReplaceAll(data, []byte(sourceBaton), []byte(packageBaton)), nil
}

// stage writes every generated file nfpm.yaml names under dir: the man page
// and completions from the host build, the rewritten scripts, the changelog
// and the copyright file.
func (b *builder) stage(ctx context.Context, dir string) error {
	bin, err := b.host(ctx)
	if err != nil {
		return err
	}
	man, err := output(ctx, bin, "man")
	if err != nil {
		return err
	}
	files := map[string][]byte{"baton.1.gz": gzipBest(man)}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if files["completion/baton."+shell], err = output(ctx, bin, "completion", shell); err != nil {
			return err
		}
	}
	for _, s := range packagedScripts {
		data, err := os.ReadFile(filepath.Join(b.root, "scripts", s.path))
		if err != nil {
			return err
		}
		if files["scripts/"+s.path], err = rewriteScript(s.path, data, s.runsBaton); err != nil {
			return err
		}
	}
	files["changelog.gz"] = gzipBest([]byte(changelog(b.version)))
	if files["copyright"], err = copyright(ctx, b.root, bin); err != nil {
		return err
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// changelog is the Debian changelog of a native package: one entry, for
// this release, pointing at the history.
func changelog(r release) string {
	var b strings.Builder
	fmt.Fprintf(&b, "baton (%s) unstable; urgency=medium\n\n", r.Debian)
	fmt.Fprintf(&b, "  * baton %s.\n", r.Go)
	if r.Commit != "" {
		// Lines stay within 80 columns (lintian's debian-changelog-line-too-long).
		fmt.Fprintf(&b, "    Built from commit %s.\n", r.Commit)
		fmt.Fprintf(&b, "    Changes: https://github.com/batonhq/baton/commits/%.12s\n", r.Commit)
	}
	fmt.Fprintf(&b, "\n -- %s  %s\n", maintainer, r.Time.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.String()
}

// gzipBest is gzip -9n: best compression, no name, no time (lintian checks
// both for changelogs and man pages; the output is reproducible).
func gzipBest(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // the level is valid
	w.Write(data)                                         // a bytes.Buffer does not fail
	w.Close()
	return b.Bytes()
}
