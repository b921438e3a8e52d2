//go:build linux

package master

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBootNiceNeedsPrivilege: without CAP_SYS_NICE (and with RLIMIT_NICE
// at its default of 0) the check refuses --boot-nice, as a config error,
// instead of leaving ready workers at the boot value for good.
func TestBootNiceNeedsPrivilege(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NICE, &rl); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread's capabilities are changed
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_SYS_NICE
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		done <- tryBootNice(5)
	}()
	err := <-done
	base, _ := threadNice()
	switch {
	case 20-int(rl.Cur) <= base:
		t.Skipf("RLIMIT_NICE %d lets this process lower a nice value to %d without the capability", rl.Cur, 20-rl.Cur)
	case err == nil:
		t.Fatal("tryBootNice without CAP_SYS_NICE: no error")
	case !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM):
		t.Fatalf("tryBootNice without CAP_SYS_NICE: %v, want EACCES", err)
	case !strings.Contains(err.Error(), "CAP_SYS_NICE"):
		t.Errorf("error %q does not say what is missing", err)
	}
	if err := checkBootNice(5); err != nil {
		t.Errorf("checkBootNice as the test runs: %v", err)
	}
	if err := checkBootNice(0); err != nil {
		t.Errorf("checkBootNice(0): %v", err)
	}
}
