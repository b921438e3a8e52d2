package pidfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const otherUID = 1000 // some user who is neither root nor the service user

// tree makes base/dir with mode dirMode and owner dirUID, and, unless
// fileMode is 0, base/dir/app.pid with mode fileMode and owner fileUID.
// It returns the pid file's path.
func tree(t *testing.T, dirMode fs.FileMode, dirUID int, fileMode fs.FileMode, fileUID int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "app.pid")
	if fileMode != 0 {
		if err := os.WriteFile(p, []byte("4321\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		chmodChown(t, p, fileMode, fileUID)
	}
	chmodChown(t, dir, dirMode, dirUID)
	return p
}

func chmodChown(t *testing.T, path string, mode fs.FileMode, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, 0); err != nil {
		t.Fatal(err)
	}
	// Chmod after Chown: chown clears set-id bits, and the umask is not
	// applied here.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the security checks apply only to root")
	}
}

func TestCheckSecure(t *testing.T) {
	requireRoot(t)
	service := Options{ServiceUID: otherUID}
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		opts    Options
		message string // "" means secure; else a substring of the error
	}{
		{name: "root-0755-0644", setup: func(t *testing.T) string { return tree(t, 0o755, 0, 0o644, 0) }},
		{name: "no-file-yet", setup: func(t *testing.T) string { return tree(t, 0o755, 0, 0, 0) }},
		{
			name:    "file-world-writable",
			setup:   func(t *testing.T) string { return tree(t, 0o755, 0, 0o666, 0) },
			message: "app.pid is writable by other users (mode 0666); anyone could make baton signal any process",
		},
		{
			name:    "file-group-writable",
			setup:   func(t *testing.T) string { return tree(t, 0o755, 0, 0o664, 0) },
			message: "writable by other users (mode 0664)",
		},
		{
			name:    "file-owned-by-other-user",
			setup:   func(t *testing.T) string { return tree(t, 0o755, 0, 0o644, otherUID) },
			message: "app.pid is owned by uid 1000, not root; that user could make baton signal any process",
		},
		{
			name:  "file-owned-by-service-user",
			setup: func(t *testing.T) string { return tree(t, 0o755, 0, 0o644, otherUID) },
			opts:  service,
		},
		{
			name:    "file-owned-by-other-than-service-user",
			setup:   func(t *testing.T) string { return tree(t, 0o755, 0, 0o644, otherUID+1) },
			opts:    service,
			message: "owned by uid 1001, not root or the service user (uid 1000)",
		},
		{
			name:    "dir-world-writable",
			setup:   func(t *testing.T) string { return tree(t, 0o777, 0, 0o644, 0) },
			message: "run is writable by other users (mode 0777); anyone could make baton signal any process",
		},
		{
			name:    "dir-world-writable-no-file",
			setup:   func(t *testing.T) string { return tree(t, 0o777, 0, 0, 0) },
			message: "writable by other users (mode 0777)",
		},
		{
			name:    "dir-group-writable",
			setup:   func(t *testing.T) string { return tree(t, 0o775, 0, 0o644, 0) },
			message: "writable by other users (mode 0775)",
		},
		{name: "sticky-dir-root-file", setup: func(t *testing.T) string { return tree(t, 0o777|fs.ModeSticky, 0, 0o644, 0) }},
		{name: "sticky-dir-no-file", setup: func(t *testing.T) string { return tree(t, 0o777|fs.ModeSticky, 0, 0, 0) }},
		{name: "sticky-dir-service-file", setup: func(t *testing.T) string { return tree(t, 0o777|fs.ModeSticky, 0, 0o644, otherUID) }, opts: service},
		{
			name:    "sticky-dir-other-users-file",
			setup:   func(t *testing.T) string { return tree(t, 0o777|fs.ModeSticky, 0, 0o644, otherUID) },
			message: "owned by uid 1000",
		},
		{
			name:    "dir-owned-by-other-user",
			setup:   func(t *testing.T) string { return tree(t, 0o755, otherUID, 0o644, 0) },
			message: "run is owned by uid 1000, not root; that user could make baton signal any process",
		},
		{name: "dir-owned-by-service-user", setup: func(t *testing.T) string { return tree(t, 0o755, otherUID, 0o644, 0) }, opts: service},
		{
			name: "ancestor-world-writable",
			setup: func(t *testing.T) string {
				p := tree(t, 0o755, 0, 0o644, 0)
				chmodChown(t, filepath.Dir(filepath.Dir(p)), 0o777, 0)
				return p
			},
			message: "is writable by other users (mode 0777)",
		},
		{
			name: "symlink-into-insecure-dir",
			setup: func(t *testing.T) string {
				target := tree(t, 0o777, 0, 0o644, 0)
				link := filepath.Join(t.TempDir(), "app.pid")
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			message: "run is writable by other users",
		},
		{
			name: "missing-directory",
			setup: func(t *testing.T) string {
				return filepath.Join(t.TempDir(), "no", "app.pid")
			},
			message: "missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.setup(t)
			err := CheckSecure(p, tt.opts)
			if tt.message == "" {
				if err != nil {
					t.Fatalf("CheckSecure: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckSecure succeeded, want %q", tt.message)
			}
			if tt.message != "missing" && !errors.Is(err, ErrInsecure) {
				t.Fatalf("CheckSecure: %v, want ErrInsecure", err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("message %q lacks %q", err, tt.message)
			}
			if !strings.HasPrefix(err.Error(), "pidfile: "+p+": ") {
				t.Fatalf("message %q does not start with the path", err)
			}
		})
	}
}

// TestSecurityAppliedByEveryEntryPoint: reading, locking, creating and
// restoring all refuse an insecure location when running as root, and the
// Options variants accept the service user's files.
func TestSecurityAppliedByEveryEntryPoint(t *testing.T) {
	requireRoot(t)
	alive := fakeProbe(4321, time.Now().Add(-time.Hour), nil)
	calls := []struct {
		name string
		call func(path string, o Options) error
	}{
		{name: "Read", call: func(p string, o Options) error { _, err := o.Read(p); return err }},
		{name: "ReadLive", call: func(p string, o Options) error { _, err := o.ReadLive(p, alive); return err }},
		{name: "Locked", call: func(p string, o Options) error { _, _, err := o.Locked(p); return err }},
		{name: "Create", call: func(p string, o Options) error {
			f, err := Create(p, os.Getpid(), o)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{name: "RestoreOldbin", call: func(p string, o Options) error {
			// Move the file aside once; a second call finds it there.
			if _, err := os.Lstat(OldbinPath(p)); err != nil {
				if err := os.Rename(p, OldbinPath(p)); err != nil {
					return err
				}
			}
			return o.RestoreOldbin(p, alive)
		}},
	}
	for _, c := range calls {
		t.Run(c.name+"-world-writable-dir", func(t *testing.T) {
			p := tree(t, 0o777, 0, 0o644, 0)
			if err := c.call(p, Options{}); !errors.Is(err, ErrInsecure) {
				t.Fatalf("%s: %v, want ErrInsecure", c.name, err)
			}
		})
		t.Run(c.name+"-world-writable-file", func(t *testing.T) {
			p := tree(t, 0o755, 0, 0o666, 0)
			if err := c.call(p, Options{}); !errors.Is(err, ErrInsecure) {
				t.Fatalf("%s: %v, want ErrInsecure", c.name, err)
			}
		})
		t.Run(c.name+"-service-user", func(t *testing.T) {
			p := tree(t, 0o755, otherUID, 0o644, otherUID)
			if err := c.call(p, Options{}); !errors.Is(err, ErrInsecure) {
				t.Fatalf("%s with zero Options: %v, want ErrInsecure", c.name, err)
			}
			if err := c.call(p, Options{ServiceUID: otherUID}); err != nil {
				t.Fatalf("%s with ServiceUID: %v", c.name, err)
			}
		})
	}
	t.Run("package-functions-use-zero-options", func(t *testing.T) {
		p := tree(t, 0o755, 0, 0o644, otherUID)
		if _, err := Read(p); !errors.Is(err, ErrInsecure) {
			t.Errorf("Read: %v", err)
		}
		if _, err := ReadLive(p, alive); !errors.Is(err, ErrInsecure) {
			t.Errorf("ReadLive: %v", err)
		}
		if _, _, err := Locked(p); !errors.Is(err, ErrInsecure) {
			t.Errorf("Locked: %v", err)
		}
	})
}

// TestReadStateDuringReplace: a reader racing WriteState (the upgrade
// journal read by one orchestrator while another writes it) gets one whole
// version or the other, never an error: the file it opened may have lost
// its only link to the rename by the time it is checked, which is not a
// hard link someone made. A second name still is refused.
func TestReadStateDuringReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.pid.upgrade.json")
	versions := []string{strings.Repeat("a", 3000) + "\n", strings.Repeat("b", 5000) + "\n"}
	if err := (Options{}).WriteState(path, []byte(versions[0])); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := (Options{}).WriteState(path, []byte(versions[i%2])); err != nil {
				done <- err
				return
			}
		}
	}()
	replacedSeen := 0
	for range 5000 {
		data, fi, err := Options{}.ReadState(path, MaxStateSize)
		if err != nil {
			t.Errorf("read during replace: %v", err)
			break
		}
		if s := string(data); s != versions[0] && s != versions[1] {
			t.Errorf("read %d bytes that are neither version", len(data))
			break
		}
		if nlink(t, fi) == 0 {
			replacedSeen++
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of the reads had their file replaced under them", replacedSeen)

	if err := os.Link(path, path+".link"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (Options{}).ReadState(path, MaxStateSize); !errors.Is(err, ErrInsecure) {
		t.Errorf("a file with a second name: %v, want ErrInsecure", err)
	}
}

// nlink is the link count fi reports.
func nlink(t *testing.T, fi fs.FileInfo) uint64 {
	t.Helper()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no stat for %s", fi.Name())
	}
	return uint64(st.Nlink)
}
