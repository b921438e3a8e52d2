package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The systemd harness: a real systemd booted as PID 1 of private pid,
// mount, network, UTS, IPC and cgroup namespaces, in which the tests install
// the shipped units and drive them with systemctl (through nsenter), under
// load sent from the namespace's own loopback.
//
// Nothing of the host is touched: the namespace's root is the host's tree
// mounted read-only, with private tmpfs on /run, /tmp, /var/tmp, /var/log,
// /srv, /usr/local/bin and /var/lib/nginx, a private /dev, an overlay on /etc
// and /usr/sbin (writes land in the namespace's /run), /proc/sys read-only,
// its own cgroup subtree, and a bounding set without the capabilities whose
// effects are not namespaced (modules, clock, raw I/O, kexec, audit, syslog).
// It boots into a target of its own (DefaultDependencies=no) with every unit
// the host's targets pull in masked and every generator disabled, so only
// journald and what a test starts run. systemd-tmpfiles-setup.service,
// systemd-tmpfiles-setup-dev.service and systemd-tmpfiles-clean.timer are
// among the masked: on a shared /tmp their boot would empty the host's.
// At the end the namespace's PID 1 is SIGKILLed by its pid, which ends every
// process in it, and its cgroup subtree is removed.

// sdTarget is the unit the namespace's systemd boots into.
const sdTarget = "baton-test.target"

// sdKeep are the units of the host's targets that stay unmasked: journald,
// for journalctl.
var sdKeep = []string{"systemd-journald.service", "systemd-journald.socket", "systemd-journald-dev-log.socket"}

// sdDropCaps leave the namespace's bounding set: what they allow is not
// confined by a namespace (kernel modules, the clock, raw I/O and kexec,
// audit, the kernel log, process accounting, wake alarms, MAC policy).
const sdDropCaps = "-sys_module,-sys_time,-sys_rawio,-sys_boot,-audit_control,-audit_read,-audit_write,-syslog,-sys_pacct,-wake_alarm,-block_suspend,-mac_admin,-mac_override"

// sdStage1 runs first as the namespace's PID 1 ($1 the cgroup made for it,
// $2 the stage directory): nothing mounted later may propagate to the host,
// and the cgroup namespace is rooted in the cgroup made for it.
const sdStage1 = `set -eu
mount --make-rprivate /
echo 0 >"$1/cgroup.procs"
exec unshare --cgroup -- /bin/sh -eu "$2/boot.sh" "$2"
`

// sdBoot (boot.sh, $1 the stage directory) builds the namespace's file
// system and execs systemd, still as PID 1.
const sdBoot = `stage=$1
mount -o remount,bind,ro /
mount -t proc -o nosuid,nodev,noexec proc /proc
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0 console:1:3; do
	name=${n%%:*}; rest=${n#*:}
	mknod -m 666 "/dev/$name" c "${rest%%:*}" "${rest#*:}"
done
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir /run/.harness
for d in /etc /usr/sbin; do
	n=$(echo "$d" | tr / _)
	mkdir "/run/.harness/$n.upper" "/run/.harness/$n.work"
	mount -t overlay overlay -o "lowerdir=$d,upperdir=/run/.harness/$n.upper,workdir=/run/.harness/$n.work" "$d"
done
for d in /usr/local/bin /var/log /srv /var/lib/nginx; do
	if [ -d "$d" ]; then mount -t tmpfs -o mode=755 tmpfs "$d"; fi
done
cp -R --remove-destination "$stage/root/." /
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
exec setpriv --bounding-set "$DROP_CAPS" -- env -i container=baton-test \
	"$SYSTEMD" --unit="$TARGET" --log-target=journal --show-status=no
`

// sdTargetUnit is the boot target: journald and nothing else.
const sdTargetUnit = `[Unit]
Description=baton's systemd test harness
DefaultDependencies=no
Wants=systemd-journald.service systemd-journald.socket
`

// sdns is one booted namespace. Its methods are safe for concurrent use.
type sdns struct {
	pid     int    // the namespace's PID 1, systemd, as the host sees it
	root    string // /proc/PID/root: the namespace's file system
	netns   *os.File
	stage   string
	cgroup  string
	exited  chan struct{} // closed when PID 1 has exited and was waited for
	exitErr error         // its exit, once exited is closed
	bootLog *syncBuffer
}

// requireSystemd returns the systemd binary and the cgroup2 directory to
// make the namespace's cgroup in, or skips (fails with
// BATON_REQUIRE_PEERS=1) the test with the reason systemd cannot boot here.
func requireSystemd(t *testing.T) (systemd, cgroupParent string) {
	t.Helper()
	if os.Geteuid() != 0 {
		requireSystemdFail(t, "not root")
	}
	for _, p := range []string{"/lib/systemd/systemd", "/usr/lib/systemd/systemd"} {
		if _, err := os.Stat(p); err == nil {
			systemd = p
			break
		}
	}
	if systemd == "" {
		requireSystemdFail(t, "no /lib/systemd/systemd (apt-get install systemd)")
	}
	for _, tool := range []string{"unshare", "nsenter", "mount", "setpriv", "mknod", "systemctl", "journalctl", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireSystemdFail(t, "%s not found (packages util-linux, mount, systemd)", tool)
		}
	}
	mnt, err := cgroup2Mount()
	if err != nil {
		requireSystemdFail(t, "%v", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		requireSystemdFail(t, "%v", err)
	}
	for _, line := range strings.Split(string(self), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return systemd, filepath.Join(mnt, path)
		}
	}
	requireSystemdFail(t, "this process has no cgroup2 path in /proc/self/cgroup")
	return "", ""
}

// cgroup2Mount returns where the cgroup2 hierarchy is mounted, at its root.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, types := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(types) > 0 && types[0] == "cgroup2" && fields[3] == "/" {
			return fields[4], nil
		}
	}
	return "", errors.New("no cgroup2 hierarchy is mounted (a cgroup v1 only host)")
}

// bootSystemd boots systemd in fresh namespaces and waits until it is up;
// the test's cleanup ends it. The baton built for this run is at
// /usr/local/bin/baton in it.
func bootSystemd(t *testing.T) *sdns {
	t.Helper()
	systemd, parent := requireSystemd(t)
	ownerOf(t) // first, so that its kill-everything cleanup runs last
	stage, err := os.MkdirTemp("", "bt-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	s := &sdns{stage: stage, bootLog: &syncBuffer{}}
	t.Cleanup(func() { os.RemoveAll(stage) })
	s.writeStage(t)
	s.cgroup = filepath.Join(parent, "baton-systemd-"+runID+"-"+strconv.Itoa(nextNS()))
	if err := os.Mkdir(s.cgroup, 0o755); err != nil {
		requireSystemdFail(t, "cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() { s.removeCgroup(t) })

	cmd := exec.Command("/bin/sh", "-c", sdStage1, "stage1", s.cgroup, stage)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD=" + systemd, "TARGET=" + sdTarget, "DROP_CAPS=" + sdDropCaps}
	cmd.Stdout, cmd.Stderr = s.bootLog, s.bootLog
	cmd.WaitDelay = 5 * time.Second // systemd and its children keep the pipes
	// No Pdeathsig: it fires when the thread that forked exits, and
	// inNetns ends the threads it locks. If this process dies, the
	// watchdog helper kills PID 1 (TestMain).
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
	}
	waited, err := startManaged(cmd)
	if err != nil {
		requireSystemdFail(t, "cannot start a process in new namespaces: %v", err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.exitErr = <-waited
		close(s.exited)
	}()
	s.pid = cmd.Process.Pid
	s.root = fmt.Sprintf("/proc/%d/root", s.pid)
	t.Cleanup(func() { s.shutdown(t) })
	if s.netns, err = os.Open(fmt.Sprintf("/proc/%d/ns/net", s.pid)); err != nil {
		t.Fatal(err)
	}
	if err := s.inNetns(loopbackUp); err != nil {
		t.Fatalf("bringing lo up in the namespace: %v", err)
	}
	s.waitBoot(t)
	return s
}

// requireSystemdFail skips, or fails with BATON_REQUIRE_PEERS=1, a test
// whose systemd could not boot.
func requireSystemdFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequirePeers) == "1" {
		t.Fatalf("systemd cannot boot in a namespace here and %s=1: %s", EnvRequirePeers, msg)
	}
	t.Skipf("systemd cannot boot in a namespace here: %s (set %s=1 to fail instead)", msg, EnvRequirePeers)
}

var nsSeq struct {
	mu sync.Mutex
	n  int
}

func nextNS() int {
	nsSeq.mu.Lock()
	defer nsSeq.mu.Unlock()
	nsSeq.n++
	return nsSeq.n
}

// writeStage lays out what boot.sh copies into the namespace: the boot
// target, the masks, disabled generators and the freshly built baton.
func (s *sdns) writeStage(t *testing.T) {
	t.Helper()
	root := filepath.Join(s.stage, "root")
	units := filepath.Join(root, "etc/systemd/system")
	for _, d := range []string{units, filepath.Join(root, "etc/systemd/system-generators"), filepath.Join(root, "usr/local/bin"), filepath.Join(root, "var/log/nginx")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(s.stage, "boot.sh"), sdBoot, 0o644)
	writeFile(t, filepath.Join(units, sdTarget), sdTargetUnit, 0o644)
	for _, name := range hostPulledUnits() {
		if err := os.Symlink("/dev/null", filepath.Join(units, name)); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"/lib/systemd/system-generators", "/usr/lib/systemd/system-generators", "/etc/systemd/system-generators"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			dst := filepath.Join(root, "etc/systemd/system-generators", e.Name())
			if err := os.Symlink("/dev/null", dst); err != nil && !errors.Is(err, os.ErrExist) {
				t.Fatal(err)
			}
		}
	}
	if err := copyFile(batonBin, filepath.Join(root, "usr/local/bin/baton"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// hostPulledUnits lists the units the host's targets pull in (their .wants
// and .requires directories), but journald's and the units under test: the
// namespace masks them all, so that nothing the host's boot would start
// (udev, sysctl, module loading, timesyncd, tmpfiles, ...) starts there.
func hostPulledUnits() []string {
	var out []string
	for _, dir := range []string{"/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system"} {
		for _, kind := range []string{"*.wants", "*.requires"} {
			dirs, _ := filepath.Glob(filepath.Join(dir, kind))
			for _, d := range dirs {
				ents, _ := os.ReadDir(d)
				for _, e := range ents {
					n := e.Name()
					if strings.HasSuffix(n, ".target") || slices.Contains(sdKeep, n) || slices.Contains(sdUnderTest, n) || slices.Contains(out, n) {
						continue
					}
					out = append(out, n)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// sdUnderTest are host units the tests start: never masked.
var sdUnderTest = []string{"nginx.service"}

// waitBoot waits for systemd's private socket, then for the boot to finish.
func (s *sdns) waitBoot(t *testing.T) {
	t.Helper()
	ctx := testContext(t)
	begin := time.Now()
	private := s.path("/run/systemd/private")
	err := waitFor(ctx, 60*time.Second, func() (bool, error) {
		select {
		case <-s.exited:
			return true, nil
		default:
		}
		_, err := os.Stat(private)
		return err == nil, err
	})
	select {
	case <-s.exited:
		err = fmt.Errorf("PID 1 exited: %v", s.exitErr)
	default:
	}
	if err != nil {
		requireSystemdFail(t, "systemd did not come up: %v; boot output: %s", err, s.bootLog.String())
	}
	bctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r := s.run(bctx, "systemctl", "is-system-running", "--wait")
	if state := strings.TrimSpace(r.Stdout); state != "running" {
		failed := s.run(ctx, "systemctl", "--failed", "--no-legend", "--plain")
		requireSystemdFail(t, "systemd booted %q, not running: failed units: %s %s", state, failed.Stdout, r.Stderr)
	}
	t.Logf("systemd booted as PID 1 (host pid %d) of its namespaces in %s", s.pid, time.Since(begin).Round(time.Millisecond))
}

// shutdown dumps the journal if the test failed, then SIGKILLs the
// namespace's PID 1, which ends every process in the namespace, and waits
// for it.
func (s *sdns) shutdown(t *testing.T) {
	if t.Failed() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r := s.run(ctx, "journalctl", "--no-pager", "-o", "short-precise", "-n", "300")
		cancel()
		t.Logf("the namespace's journal (last 300 lines):\n%s%s", indent(r.Stdout), indent(r.Stderr))
		if out := s.bootLog.String(); out != "" {
			t.Logf("boot output:\n%s", indent(out))
		}
	}
	if s.netns != nil {
		s.netns.Close()
	}
	if err := unix.Kill(s.pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		t.Errorf("killing the namespace's PID 1 (%d): %v", s.pid, err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("the namespace's PID 1 (%d) did not exit within 30s of SIGKILL", s.pid)
	}
}

// removeCgroup removes the namespace's cgroup subtree, deepest first, once
// the processes in it are gone.
func (s *sdns) removeCgroup(t *testing.T) {
	err := waitFor(context.Background(), 10*time.Second, func() (bool, error) {
		var dirs []string
		filepath.WalkDir(s.cgroup, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				return false, fmt.Errorf("rmdir %s: %w", dirs[i], err)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("removing the namespace's cgroup %s: %v", s.cgroup, err)
	}
}
