//go:build linux

package master

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSocketModeFollowsNoSymlink: the socket file gets --socket-mode without
// a path operation after bind(2). Before, bind chmod-ed the path: had the
// file been swapped for a symlink in between (afterBind plays that user),
// root changed the mode of whatever the link named.
func TestSocketModeFollowsNoSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "shadow")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := parseListen("unix:app.sock", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { afterBind = nil })
	afterBind = func(s listenSpec) {
		if err := os.Remove(s.Unix); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(victim, s.Unix); err != nil {
			t.Error(err)
		}
	}
	l, err := bind(s, 0o666)
	if err == nil {
		l.close(true)
		t.Errorf("bind accepted a socket path that turned into a symlink")
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the symlink's target changed mode to %o; a socket mode must never follow a symlink", fi.Mode().Perm())
	}

	// Undisturbed, the file has exactly the mode asked for, and the
	// process's umask is what it was.
	afterBind = nil
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	s2, _ := parseListen("unix:ok.sock", dir)
	l2, err := bind(s2, 0o606)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.close(true)
	fi, err = os.Lstat(s2.Unix)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o606 {
		t.Errorf("socket file mode %v, want a socket with 0606", fi.Mode())
	}
	if got := unix.Umask(0o027); got != 0o027 {
		t.Errorf("umask after bind %o, want 027 restored", got)
	}
}
