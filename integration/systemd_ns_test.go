package integration

// Working in a booted namespace (systemd_harness_test.go): commands through
// nsenter, files through /proc/PID/root, connections from its network
// namespace, load on its servers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/upgrade/load"
)

// path is where the host reaches path of the namespace's file system.
func (s *sdns) path(p string) string { return s.root + p }

// run runs a command in the namespace (nsenter) and returns its result.
func (s *sdns) run(ctx context.Context, args ...string) cmdResult {
	ns := []string{"-t", strconv.Itoa(s.pid), "-m", "-u", "-i", "-n", "-p", "-C", "--"}
	cmd := execCommand(ctx, "nsenter", append(ns, args...)...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	begin := time.Now()
	err := cmd.Run()
	r := cmdResult{Args: args, Stdout: out.String(), Stderr: errb.String(), Elapsed: time.Since(begin)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += err.Error()
	}
	return r
}

// must runs a command in the namespace and fails the test unless it exits 0.
func (s *sdns) must(ctx context.Context, t testing.TB, args ...string) cmdResult {
	t.Helper()
	r := s.run(ctx, args...)
	if r.Code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), r.Code, indent(r.Stdout), indent(r.Stderr))
	}
	return r
}

// systemctl runs systemctl in the namespace and logs what it did.
func (s *sdns) systemctl(ctx context.Context, t testing.TB, args ...string) cmdResult {
	t.Helper()
	r := s.run(ctx, append([]string{"systemctl"}, args...)...)
	t.Logf("systemctl %s: exit %d after %s\n%s%s", strings.Join(args, " "), r.Code, r.Elapsed.Round(time.Millisecond), indent(r.Stdout), indent(r.Stderr))
	return r
}

// show returns unit properties (systemctl show -p).
func (s *sdns) show(ctx context.Context, t testing.TB, unit string, props ...string) map[string]string {
	t.Helper()
	args := []string{"systemctl", "show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	r := s.must(ctx, t, args...)
	out := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// mainPID is the unit's MainPID as systemd has it (0: none), in the
// namespace's pid namespace.
func (s *sdns) mainPID(ctx context.Context, t testing.TB, unit string) int {
	t.Helper()
	pid, err := strconv.Atoi(s.show(ctx, t, unit, "MainPID")["MainPID"])
	if err != nil {
		t.Fatalf("MainPID of %s: %v", unit, err)
	}
	return pid
}

// unitProcs lists the processes in the unit's cgroup (namespace pids).
func (s *sdns) unitProcs(t testing.TB, unit string) []int {
	t.Helper()
	var pids []int
	dir := s.path("/sys/fs/cgroup/system.slice")
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || filepath.Base(p) != unit {
			return nil
		}
		filepath.WalkDir(p, func(q string, e os.DirEntry, err error) error {
			if err == nil && e.Name() == "cgroup.procs" {
				data, _ := os.ReadFile(q)
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil {
						pids = append(pids, pid)
					}
				}
			}
			return nil
		})
		return filepath.SkipDir
	})
	return pids
}

// write puts content at path in the namespace (atomically).
func (s *sdns) write(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(s.path(path)), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.path(path), content, mode)
}

// install copies a file of this repository (relative to the module root)
// to path in the namespace.
func (s *sdns) install(t testing.TB, src, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(s.path(path)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join("..", src), s.path(path), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceBaton installs a new build of baton at /usr/local/bin/baton, as a
// package upgrade would (a new file renamed over the old one): the running
// masters' binary is then replaced on disk. The build differs from the last
// by bytes appended, which an ELF runs unchanged with.
func (s *sdns) replaceBaton(t testing.TB) {
	t.Helper()
	s.replaceELF(t, batonBin, "/usr/local/bin/baton")
}

// replaceELF renames a copy of src with bytes appended over path in the
// namespace.
func (s *sdns) replaceELF(t testing.TB, src, path string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	err = writeFileAtomic(s.path(path), 0o755, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "\nbuild %d\n", time.Now().UnixNano())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inNetns runs f on a thread that joined the namespace's network
// namespace; the thread exits with it, never to be reused.
func (s *sdns) inNetns(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Setns(int(s.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		done <- f()
	}()
	return <-done
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// dial connects from inside the namespace: TCP from its network namespace
// (its loopback), a unix socket by its host path (path).
func (s *sdns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network == "unix" {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	var c net.Conn
	err := s.inNetns(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// get makes one HTTP request from inside the namespace: url is
// "http://..." or "unix:" and the socket's path in the namespace, then
// ":" and the URL path.
func (s *sdns) get(ctx context.Context, url string) (int, string, error) {
	dial := s.dial
	if rest, ok := strings.CutPrefix(url, "unix:"); ok {
		sock, path, _ := strings.Cut(rest, ":")
		url = "http://localhost" + path
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", s.path(sock))
		}
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// startLoad puts load on the namespace's servers until stop or the end of
// the test: each of runs names a Target ("http://127.0.0.1:PORT/", dialled
// from the namespace's network namespace, or "unix:" and the host path of
// a socket in it) and a Mode; every answer must pass expect.
func (s *sdns) startLoad(ctx context.Context, t *testing.T, name string, expect func(status int, body []byte) error, runs ...load.Options) *traffic {
	t.Helper()
	tr := &traffic{name: name}
	for _, o := range runs {
		o.Concurrency, o.Pause, o.Timeout, o.Expect, o.Dial = 2, loadPause, 10*time.Second, expect, s.dial
		r, err := load.Start(ctx, o)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		tr.runs = append(tr.runs, r)
	}
	t.Cleanup(func() {
		if !tr.done {
			tr.stop(t)
		}
	})
	return tr
}
