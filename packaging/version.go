package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// release is the version being packaged.
type release struct {
	Go     string    // for -X main.version: v1.2.3, v1.2.3-rc.1, v1.2.3+git.20251203070100.2bb8d3a1b2c3
	Debian string    // the package's: 1.2.3, 1.2.3~rc.1, 1.2.3+git.20251203070100.2bb8d3a1b2c3
	Commit string    // the commit built, for the changelog ("" outside git)
	Time   time.Time // the commit's time (or SOURCE_DATE_EPOCH): every file's mtime, the changelog's date
}

// goVersion is a release tag: v, three numbers, an optional -prerelease and
// an optional +build.
var goVersion = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// debianVersion turns a Go version into Debian's upstream version of a
// native package: no "v", the prerelease after "~" (so 1.2.3~rc.1 sorts
// before 1.2.3) and no other "-" (a "-" would start a Debian revision).
func debianVersion(v string) (string, error) {
	m := goVersion.FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("version %q is not a release tag such as v1.2.3 or v1.2.3-rc.1", v)
	}
	d := m[1] + "." + m[2] + "." + m[3]
	if m[4] != "" {
		d += "~" + strings.ReplaceAll(m[4][1:], "-", ".")
	}
	if m[5] != "" {
		d += "+" + strings.ReplaceAll(m[5][1:], "-", ".")
	}
	return d, nil
}

// resolveVersion is the release to build: the given version, or the tag of
// HEAD, or, between tags, the last tag (v0.0.0 before the first) with
// +git.<commit time>.<commit> appended, which Debian sorts after the tag
// and before the next one.
func resolveVersion(ctx context.Context, root, given string) (release, error) {
	var r release
	if out, err := git(ctx, root, "log", "-1", "--format=%H %ct"); err == nil {
		hash, ct, _ := strings.Cut(out, " ")
		secs, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return r, fmt.Errorf("git log: commit time %q: %w", ct, err)
		}
		r.Commit, r.Time = hash, time.Unix(secs, 0).UTC()
	} else if given == "" {
		return r, fmt.Errorf("cannot tell the version, pass -version v1.2.3: %w", err)
	}
	if epoch, ok := sourceDateEpoch(); ok {
		r.Time = epoch
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC().Truncate(time.Second)
	}
	r.Go = given
	if r.Go == "" {
		r.Go = describe(ctx, root, r)
	}
	var err error
	r.Debian, err = debianVersion(r.Go)
	return r, err
}

// describe names the commit r was read from after its tags.
func describe(ctx context.Context, root string, r release) string {
	if tag, err := git(ctx, root, "describe", "--tags", "--exact-match", "--match", "v[0-9]*"); err == nil && goVersion.MatchString(tag) {
		return tag
	}
	base := "v0.0.0"
	if tag, err := git(ctx, root, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*"); err == nil && goVersion.MatchString(tag) {
		base, _, _ = strings.Cut(tag, "+")
	}
	v := base + "+git." + r.Time.Format("20060102150405") + "." + r.Commit[:12]
	if out, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no"); err == nil && out != "" {
		v += ".dirty"
	}
	return v
}

// git runs git in dir and returns its trimmed output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", args[0], err)
	}
	return strings.TrimSpace(string(out)), nil
}

// sourceDateEpoch is SOURCE_DATE_EPOCH (reproducible-builds.org), if set.
func sourceDateEpoch() (time.Time, bool) {
	s, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok {
		return time.Time{}, false
	}
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(secs, 0).UTC(), true
}
