// Command packaging builds baton's Debian packages:
//
//	go -C packaging run .                      # dist/baton_<version>_{amd64,arm64}.deb
//	go -C packaging run . -arch amd64 -version v1.2.3 -out /tmp/dist
//
// It is a module of its own so that nfpm (github.com/goreleaser/nfpm/v2,
// pinned in this go.mod) and its dependencies stay out of baton's go.mod.
//
// The steps, each a function of this package:
//   - version.go: the version from the release tag (git describe), in Go's
//     form for -ldflags "-X main.version=v1.2.3" and in Debian's (1.2.3);
//   - build.go: CGO_ENABLED=0 -trimpath builds of ../cmd/baton, one per
//     architecture; the host's build also generates baton(1) and the
//     completion scripts (baton man, baton completion), so they are made
//     from the CLI definition of the binary they ship with and never drift;
//   - stage.go: the scripts/ files with /usr/local/bin/baton rewritten to
//     /usr/bin/baton, the changelog and the copyright file, which names
//     every module linked into the binary (copyright.go);
//   - nfpm.yaml: what goes where in the package; package.go fills in its
//     ${...} variables and runs nfpm's deb packager.
//
// The checked-in files in debian/ are the maintainer scripts (systemd's
// daemon-reload, nothing else), the logrotate snippet, README.Debian and the
// lintian overrides, each with its reason.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// options are the command line's.
type options struct {
	version string   // Go form (v1.2.3); empty: from git
	archs   []string // Debian architectures
	out     string   // directory for the .deb files
	root    string   // the baton repository
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseOptions(os.Args[1:])
	if err == nil {
		err = run(ctx, opts)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
}

// supportedArchs are the architectures the package is built for; Go's
// GOARCH and Debian's names agree for them.
var supportedArchs = []string{"amd64", "arm64"}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("packaging", flag.ContinueOnError)
	version := fs.String("version", "", "version to build, a release tag such as v1.2.3 (default: from git describe)")
	archs := fs.String("arch", strings.Join(supportedArchs, ","), "comma-separated architectures")
	out := fs.String("out", "", "directory for the .deb files (default: dist in the repository)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	root, err := repositoryRoot()
	if err != nil {
		return options{}, err
	}
	o := options{version: *version, root: root, out: *out}
	if o.out == "" {
		o.out = filepath.Join(root, "dist")
	}
	for _, a := range strings.Split(*archs, ",") {
		if !slices.Contains(supportedArchs, a) {
			return options{}, fmt.Errorf("-arch: %q is not one of %s", a, strings.Join(supportedArchs, ", "))
		}
		o.archs = append(o.archs, a)
	}
	return o, nil
}

// repositoryRoot is the directory above this program's own, found from the
// working directory that `go -C packaging run .` sets.
func repositoryRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for _, dir := range []string{wd, filepath.Dir(wd)} {
		if _, err := os.Stat(filepath.Join(dir, "packaging", "nfpm.yaml")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("run from the repository or its packaging directory (go -C packaging run .), not %s", wd)
}

// run builds one package per architecture into o.out.
func run(ctx context.Context, o options) error {
	v, err := resolveVersion(ctx, o.root, o.version)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "baton-packaging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	b := builder{root: o.root, work: work, version: v}
	stage := filepath.Join(work, "stage")
	if err := b.stage(ctx, stage); err != nil {
		return err
	}
	for _, arch := range o.archs {
		bin, err := b.build(ctx, arch)
		if err != nil {
			return err
		}
		path, err := writePackage(o.root, stage, bin, arch, v, o.out)
		if err != nil {
			return fmt.Errorf("%s: %w", arch, err)
		}
		fmt.Println(path)
	}
	return nil
}
