//go:build linux

package procs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSplitEnviron(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{name: "empty", in: "", want: nil},
		{name: "one", in: "A=1\x00", want: []string{"A=1"}},
		{name: "no final NUL", in: "A=1\x00B=2", want: []string{"A=1", "B=2"}},
		{name: "empty entries", in: "\x00A=1\x00\x00B=\x00", want: []string{"A=1", "B="}},
		// A title written over argv and on into the environment (nginx,
		// setproctitle) reads as one string, padded with NULs.
		{name: "title", in: "nginx: worker process\x00\x00\x00\x00", want: []string{"nginx: worker process"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitEnviron([]byte(tc.in)); !slices.Equal(got, tc.want) {
				t.Errorf("splitEnviron(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestEnviron(t *testing.T) {
	h := startHelper(t, "sleep", helperOpts{env: []string{"BATON_PROCS_TEST_MARK=a b\tc"}})
	env, err := Environ(h.id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(env, "BATON_PROCS_TEST_MARK=a b\tc") {
		t.Errorf("Environ lacks the variable the helper was started with: %q", env)
	}
	// The helper unset envHelper after exec; /proc shows what execve passed.
	if !slices.Contains(env, envHelper+"=sleep") {
		t.Errorf("Environ lacks %s=sleep, unset only after exec: %q", envHelper, env)
	}
	if _, err := Environ(Identity{PID: h.id.PID, Start: h.id.Start + 1}); !errors.Is(err, ErrReused) {
		t.Errorf("Environ of another identity at the pid: err = %v, want ErrReused", err)
	}
}

func TestFDTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "held")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := startHelper(t, "sleep", helperOpts{extraFiles: []*os.File{f}})
	for _, tc := range []struct {
		name string
		fd   int
		want func(string) bool
	}{
		{name: "inherited file", fd: 3, want: func(s string) bool { return s == path }},
		{name: "stdin pipe", fd: 0, want: func(s string) bool { return strings.HasPrefix(s, "pipe:[") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FDTarget(h.id, tc.fd)
			if err != nil || !tc.want(got) {
				t.Errorf("FDTarget(%v, %d) = %q, %v", h.id, tc.fd, got, err)
			}
		})
	}
	t.Run("closed", func(t *testing.T) {
		// The helper closed its stdout to say it was ready.
		_, err := FDTarget(h.id, 1)
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrGone) {
			t.Errorf("FDTarget of a closed fd: err = %v, want fs.ErrNotExist, not ErrGone", err)
		}
	})
	t.Run("reused", func(t *testing.T) {
		if _, err := FDTarget(Identity{PID: h.id.PID, Start: h.id.Start + 1}, 0); !errors.Is(err, ErrReused) {
			t.Errorf("FDTarget of another identity at the pid: err = %v, want ErrReused", err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		if _, err := FDTarget(h.id, -1); err == nil {
			t.Error("FDTarget(-1) succeeded")
		}
	})
}

func TestSocketHolders(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	h := startHelper(t, "listen", helperOpts{}, sock)
	// "NETWORK ADDR INODE" per listener, then "child PID": the child holds
	// the tcp4 listener as fd 3, nothing else.
	inodes := map[string]uint64{}
	var child Identity
	for _, l := range h.lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "child":
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("helper printed %q", l)
			}
			child = recordStarted(t, pid)
		case len(f) == 3:
			ino, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				t.Fatalf("helper printed %q", l)
			}
			inodes[f[0]] = ino
		}
	}
	if child.PID == 0 || inodes["tcp4"] == 0 || inodes["tcp6"] == 0 {
		t.Fatalf("helper printed %q", h.lines)
	}
	for _, tc := range []struct {
		name   string
		inodes []uint64
		want   []Identity
	}{
		{name: "inherited", inodes: []uint64{inodes["tcp4"]}, want: []Identity{h.id, child}},
		{name: "not inherited", inodes: []uint64{inodes["tcp6"]}, want: []Identity{h.id}},
		{name: "any of two", inodes: []uint64{inodes["tcp6"], inodes["tcp4"]}, want: []Identity{h.id, child}},
		{name: "none", inodes: nil, want: nil},
		// Inode 0 is no socket's: nobody holds it.
		{name: "nobody's", inodes: []uint64{0}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SocketHolders(tc.inodes)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b Identity) int { return a.PID - b.PID })
			want := slices.Clone(tc.want)
			slices.SortFunc(want, func(a, b Identity) int { return a.PID - b.PID })
			if !slices.Equal(got, want) {
				t.Errorf("SocketHolders(%v) = %v, want %v", tc.inodes, got, want)
			}
		})
	}
}

// TestDropEnv: entries go by their name only (a value that looks like a
// name does not count), order is kept, and the input is not changed.
func TestDropEnv(t *testing.T) {
	env := []string{"PATH=/bin", "LISTEN_FDS=2", "X=LISTEN_FDS=3", "NOEQUALS", "LISTEN_FDS", "HOME=/root"}
	orig := slices.Clone(env)
	got := DropEnv(env, func(name string) bool { return name == "LISTEN_FDS" || name == "NOEQUALS" })
	if want := []string{"PATH=/bin", "X=LISTEN_FDS=3", "HOME=/root"}; !slices.Equal(got, want) {
		t.Errorf("DropEnv = %q, want %q", got, want)
	}
	if !slices.Equal(env, orig) {
		t.Errorf("DropEnv changed its input: %q", env)
	}
}
