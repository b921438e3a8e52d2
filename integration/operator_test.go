package integration

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestOperatorNonRoot runs baton as a deploy user (nobody) against a
// master root runs, as on a server where the deploy user lacks sudo:
// every verb is refused before anything happens — exit 2, one line naming
// the owner and saying to run baton as root —, nothing is signalled, no
// journal or lock is written, and status says it cannot see the master
// instead of showing blanks. Root then upgrades as usual.
func TestOperatorNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run baton as another user")
	}
	cred, bin := nobody(t)
	p := startPeer(t, "nginx", peerOptions{})
	ctx := testContext(t)
	tr := startLoad(ctx, t, p)
	tr.progress(ctx, t, 10)
	// The layout of /run: a directory root owns that others may read.
	if err := os.Chmod(filepath.Dir(p.pidfile), 0o755); err != nil {
		t.Fatal(err)
	}
	before := p.snapshot(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "start", args: p.upgradeArgs("start"), want: "cannot signal master"},
		{name: "commit", args: p.upgradeArgs("commit"), want: "cannot signal master"},
		{name: "rollback", args: p.upgradeArgs("rollback"), want: "cannot signal master"},
		{name: "status", args: []string{"upgrade", "status", "--pidfile", p.pidfile}, want: "cannot inspect master"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := batonStartAs(ctx, t, cred, bin, tc.args...).wait(t)
			r.wantCode(t, 2)
			errLines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			last := errLines[len(errLines)-1]
			for _, s := range []string{tc.want, "belongs to root", "run baton as root"} {
				if !strings.Contains(last, s) {
					t.Errorf("the error line %q does not say %q", last, s)
				}
			}
		})
	}
	p.wantUntouched(t, before)
	for _, f := range []string{p.pidfile + ".upgrade.json", p.pidfile + ".upgrade.lock"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s was written by a refused invocation", f)
		}
	}
	p.release(t, "v2")
	p.upgrade(ctx, t, "start", "--commit").wantCode(t, 0)
	p.finish(ctx, t, tr, "v2", p.masterPID(t), "v1", "v2")
}

// nobody is the credential of the user nobody and a copy of the baton
// binary that user may run.
func nobody(t *testing.T) (*syscall.Credential, string) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "baton-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "baton")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(batonBin, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, bin
}
