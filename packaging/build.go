package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// builder builds baton binaries for one release.
type builder struct {
	root    string  // the repository
	work    string  // scratch directory
	version release // what -X main.version says
	bins    map[string]string
}

// build returns the path of a CGO_ENABLED=0, -trimpath, stripped build of
// cmd/baton for linux/arch with the release's version linked in, without
// urfave/cli's Markdown and man page generator (urfave_cli_no_docs: baton
// writes its man page itself, and that package's initialisation is the
// largest of the CLI's start, see BENCHMARKS.md). A second
// call for the same arch returns the first build.
func (b *builder) build(ctx context.Context, arch string) (string, error) {
	if bin, ok := b.bins[arch]; ok {
		return bin, nil
	}
	bin := filepath.Join(b.work, "bin", arch, "baton")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=auto", "-tags", "urfave_cli_no_docs",
		"-ldflags", "-s -w -X main.version="+b.version.Go, "-o", bin, "./cmd/baton")
	cmd.Dir = b.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build for %s: %w", arch, err)
	}
	if b.bins == nil {
		b.bins = map[string]string{}
	}
	b.bins[arch] = bin
	return bin, nil
}

// host is the build for this machine, which generates the man page and the
// completion scripts; it must report the release's version.
func (b *builder) host(ctx context.Context) (string, error) {
	bin, err := b.build(ctx, runtime.GOARCH)
	if err != nil {
		return "", err
	}
	out, err := output(ctx, bin, "--version")
	if err != nil {
		return "", err
	}
	if want := "baton version " + b.version.Go; strings.TrimSpace(string(out)) != want {
		return "", fmt.Errorf("%s --version says %q, want %q", bin, strings.TrimSpace(string(out)), want)
	}
	return bin, nil
}

// output runs bin with args and returns its standard output.
func output(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("baton %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
