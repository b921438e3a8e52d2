//go:build linux

package master_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/load"
	"github.com/batonhq/baton/upgrade/master"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// loadPair runs keep-alive and new-connection clients against one target.
type loadPair struct {
	runs []*load.Run
}

func startLoad(t *testing.T, ctx context.Context, target string, expect func(int, []byte) error) *loadPair {
	t.Helper()
	var p loadPair
	for _, mode := range []load.Mode{load.KeepAlive, load.NewConn} {
		r, err := load.Start(ctx, load.Options{Target: target, Concurrency: 3, Mode: mode, Pause: 2 * time.Millisecond, Expect: expect})
		if err != nil {
			t.Fatal(err)
		}
		p.runs = append(p.runs, r)
	}
	t.Cleanup(func() { p.stop() })
	return &p
}

// progress waits until every run answered n more requests, so that each
// step of an upgrade is crossed by real traffic.
func (p *loadPair) progress(h *harness, n int) {
	h.t.Helper()
	base := make([]int, len(p.runs))
	for i, r := range p.runs {
		base[i], _ = r.Counts()
	}
	h.waitFor(fmt.Sprintf("%d more answers", n), func() bool {
		for i, r := range p.runs {
			if ok, _ := r.Counts(); ok < base[i]+n {
				return false
			}
		}
		return true
	})
}

func (p *loadPair) stop() []load.Result {
	var out []load.Result
	for _, r := range p.runs {
		out = append(out, r.Stop())
	}
	return out
}

// expectGen accepts the helper worker's answer from any generation.
func expectGen(status int, body []byte) error {
	if status != 200 || !strings.HasPrefix(string(body), "gen=") {
		return fmt.Errorf("status %d body %q", status, body)
	}
	return nil
}

// generationsSeen lists the generations whose answers a result tallied.
func generationsSeen(rs []load.Result) []string {
	var out []string
	for _, r := range rs {
		for tag := range r.Tags {
			g, _, _ := strings.Cut(tag, " ")
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestUpgradeUnderLoad runs the commit (USR2, WINCH, QUIT old) and rollback
// (USR2, WINCH, HUP old, QUIT new) cycles under keep-alive and
// new-connection clients, and counts every failed request.
func TestUpgradeUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name     string
		listen   string
		rollback bool
	}{
		{name: "commit-tcp", listen: "127.0.0.1:0"},
		{name: "rollback-tcp", listen: "127.0.0.1:0", rollback: true},
		{name: "commit-unix", listen: "unix:app.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testOpts{Workers: 2}, "")
			h.opts.Listen = []string{tc.listen}
			h.start()
			old := h.pid
			st := h.waitReady(old)
			inode := st.Listeners[0].Inode
			lp := startLoad(t, h.ctx, target(st), expectGen)
			lp.progress(h, 20)

			h.signal(old, syscall.SIGUSR2)
			var nw int
			h.waitFor("new pid file", func() bool {
				nw = pidInFile(t, h.opts.PIDFile)
				return nw != 0 && nw != old
			})
			ns := h.waitReady(nw)
			if ns.Listeners[0].Inode != inode {
				t.Errorf("new master's socket inode %d, want the old %d", ns.Listeners[0].Inode, inode)
			}
			lp.progress(h, 20)
			h.signal(old, syscall.SIGWINCH)
			h.waitStatus(old, "old workers gone", func(s statusfile.Master) bool { return len(s.Workers) == 0 })
			lp.progress(h, 20)
			survivor, gone := nw, old
			if tc.rollback {
				h.signal(old, syscall.SIGHUP)
				h.waitStatus(old, "old master serving again", func(s statusfile.Master) bool { return s.Ready && s.Generation == 3 })
				// systemd must know the old master as the main pid again
				// before the new one, its main pid until now, is stopped.
				h.waitFor("MAINPID back to the old master", func() bool { return h.sd.said(old, fmt.Sprintf("MAINPID=%d", old)) })
				lp.progress(h, 20)
				survivor, gone = old, nw
			}
			h.signal(gone, syscall.SIGQUIT)
			h.waitGone(gone)
			lp.progress(h, 20)
			rs := lp.stop()
			for _, r := range rs {
				t.Logf("%s", r)
				if r.Failed != 0 || r.OK == 0 {
					t.Errorf("%s: %d failed of %d: %v %v", r.Mode, r.Failed, r.Requests, r.Failures, r.Samples)
				}
			}
			want := []string{"gen=1", "gen=2"}
			if tc.rollback {
				want = append(want, "gen=3") // numbered after the new master's
			}
			if got := generationsSeen(rs); !slices.Equal(got, want) {
				t.Errorf("answers came from %v, want %v", got, want)
			}
			// The survivor has noticed the other master is gone once it no
			// longer reports an upgrade pending; the pid files settle before.
			s := h.waitStatus(survivor, "sole master", func(s statusfile.Master) bool { return !s.UpgradePending && s.Ready })
			if got := pidInFile(t, h.opts.PIDFile); got != survivor {
				t.Errorf("pid file holds %d, want %d", got, survivor)
			}
			if _, err := os.Stat(pidfile.OldbinPath(h.opts.PIDFile)); !os.IsNotExist(err) {
				t.Errorf(".oldbin left behind: %v", err)
			}
			if got := listenerInodes(t, survivor); !slices.Equal(got, []uint64{inode}) {
				t.Errorf("survivor listens on %v, want %d", got, inode)
			}
			if tc.rollback && !h.sd.said(old, fmt.Sprintf("MAINPID=%d", old)) {
				t.Errorf("the old master did not reclaim MAINPID after the rollback: %v", h.sd)
			}
			if strings.HasPrefix(tc.listen, "unix:") {
				if fi, err := os.Stat(s.Listeners[0].Addr); err != nil || fi.Mode().Type() != os.ModeSocket {
					t.Errorf("unix socket after the hand-over: %v", err)
				}
				h.signal(survivor, syscall.SIGQUIT)
				h.waitGone(survivor)
				if _, err := os.Stat(s.Listeners[0].Addr); !os.IsNotExist(err) {
					t.Errorf("the last master out left its socket file: %v", err)
				}
			}
		})
	}
}

// TestNewMasterDiesBeforeCommit kills the new master after WINCH: its
// workers die with it (Pdeathsig), and the old master takes the pid file
// back and serves again.
func TestNewMasterDiesBeforeCommit(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	h.start()
	old := h.pid
	h.signal(old, syscall.SIGUSR2)
	var nw int
	h.waitFor("new pid file", func() bool {
		nw = pidInFile(t, h.opts.PIDFile)
		return nw != 0 && nw != old
	})
	ns := h.waitReady(nw)
	h.signal(old, syscall.SIGWINCH)
	h.waitStatus(old, "old drained", func(s statusfile.Master) bool { return len(s.Workers) == 0 })
	h.signal(nw, syscall.SIGKILL)
	for _, w := range workerPIDs(ns, "ready") {
		h.waitGone(w) // Pdeathsig: no orphan worker keeps serving an old release
	}
	st := h.waitStatus(old, "serving again", func(s statusfile.Master) bool { return s.Ready && !s.UpgradePending })
	if got := pidInFile(t, h.opts.PIDFile); got != old {
		t.Errorf("pid file holds %d, want the old master %d back", got, old)
	}
	if _, err := os.Stat(pidfile.OldbinPath(h.opts.PIDFile)); !os.IsNotExist(err) {
		t.Errorf(".oldbin still there: %v", err)
	}
	if body := h.get(st, "/"); !strings.HasPrefix(body, "gen=3 ") {
		t.Errorf("answer %q, want the old master's fresh generation 3", body)
	}
	data, _ := os.ReadFile(h.log)
	if !strings.Contains(string(data), "pid file restored") {
		t.Errorf("the restore is not logged")
	}
}

// TestMasterKilledTakesWorkers: a master killed with SIGKILL leaves no
// worker behind, however long ago the workers were started.
func TestMasterKilledTakesWorkers(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 3}, "")
	h.start()
	// Churn threads in the master: HUP twice so workers come from many
	// spawns; they must all share the one forking thread.
	h.signal(h.pid, syscall.SIGHUP)
	st := h.waitStatus(h.pid, "generation 2", func(s statusfile.Master) bool {
		return s.Generation == 2 && s.Ready && len(s.Workers) == 3
	})
	h.signal(h.pid, syscall.SIGKILL)
	for _, w := range workerPIDs(st, "ready") {
		h.waitGone(w)
	}
}

// TestMasterKilledWorkersFinish: the workers of a master killed outright
// get their stop signal, not SIGKILL: a request a worker holds is answered
// whole (an old worker draining when its master was killed mid-upgrade
// reset it), and then the worker exits.
func TestMasterKilledWorkersFinish(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	h.start()
	st := h.waitReady(h.pid)
	l := st.Listeners[0]
	conn, err := net.Dial(l.Network, l.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The headers and the first part are out: the worker holds the request.
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	h.signal(h.pid, syscall.SIGKILL)
	rest, err := io.ReadAll(resp.Body)
	if got := string(first) + string(rest); err != nil || got != slowBody {
		t.Errorf("the request held when the master was killed: %q, %v; want %q whole", got, err, slowBody)
	}
	for _, w := range workerPIDs(st, "ready") {
		h.waitGone(w)
	}
}

// TestReplacedBinaryAndEnvfile runs the master from a copy of the test binary,
// replaces the file and the envfile, and checks that USR2 picks both up; it
// also checks the workers' environment policy.
func TestReplacedBinaryAndEnvfile(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bindir := t.TempDir()
	bin := filepath.Join(bindir, "baton")
	copyFile(t, self, bin)
	h := newHarness(t, testOpts{Workers: 1, EnvDrop: []string{"MASTERTEST_DROPME"}}, bin)
	h.opts.EnvFile = filepath.Join(h.dir, "app.env")
	writeFile(t, h.opts.EnvFile, "# release one\nWORKER_VERSION=v1\n")
	h.extraEnv = []string{"MASTERTEST_DROPME=1", "MASTERTEST_KEEPME=1", "BATON_PIDFILE=/nowhere"}
	h.start()
	old := h.pid
	st := h.waitReady(old)
	if body := h.get(st, "/"); !strings.Contains(body, "version=v1") {
		t.Fatalf("answer %q, want version=v1", body)
	}

	t.Run("env-policy", func(t *testing.T) {
		var env []string
		if err := json.Unmarshal([]byte(h.get(st, "/env")), &env); err != nil {
			t.Fatal(err)
		}
		get := func(k string) (string, bool) {
			for _, kv := range env {
				if v, ok := strings.CutPrefix(kv, k+"="); ok {
					return v, true
				}
			}
			return "", false
		}
		for _, k := range []string{"MASTERTEST_DROPME", "BATON_PIDFILE", "BATON_INHERIT_FDS", "BATON_MASTER_ENV", "BATON_MASTER_PARENT"} {
			if v, ok := get(k); ok {
				t.Errorf("worker sees %s=%q", k, v)
			}
		}
		if v, _ := get("NOTIFY_SOCKET"); v == h.sd.path || v == "" {
			t.Errorf("worker's NOTIFY_SOCKET=%q: want baton's own, never systemd's %q", v, h.sd.path)
		}
		for k, want := range map[string]string{"MASTERTEST_KEEPME": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "unknown",
			"BATON_GENERATION": "1", "BATON_WORKER": "0", "SERVER_STARTER_PORT": st.Listeners[0].Addr + "=3", "WORKER_VERSION": "v1"} {
			if v, _ := get(k); v != want {
				t.Errorf("worker sees %s=%q, want %q", k, v, want)
			}
		}
	})

	// A new release: a different file at the same path, a changed envfile.
	copyFile(t, self, bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.opts.EnvFile, "WORKER_VERSION=v2\n")
	h.signal(old, syscall.SIGUSR2)
	var nw int
	h.waitFor("new pid file", func() bool {
		nw = pidInFile(t, h.opts.PIDFile)
		return nw != 0 && nw != old
	})
	ns := h.waitReady(nw)
	h.signal(old, syscall.SIGQUIT)
	h.waitGone(old)
	if body := h.get(ns, "/"); !strings.Contains(body, "version=v2") || !strings.HasPrefix(body, "gen=2 ") {
		t.Errorf("answer %q, want generation 2 with version=v2", body)
	}
	var want syscall.Stat_t
	if err := syscall.Stat(bin, &want); err != nil {
		t.Fatal(err)
	}
	for _, pid := range append([]int{nw}, workerPIDs(ns, "ready")...) {
		var got syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/exe", pid), &got); err != nil {
			t.Fatal(err)
		}
		if got.Ino != want.Ino {
			t.Errorf("process %d runs inode %d, want the replaced file's %d", pid, got.Ino, want.Ino)
		}
		if info, err := procs.Info(pid); err != nil || info.ExeDeleted || info.Exe != bin {
			t.Errorf("process %d: exe %q deleted=%v err=%v, want %s", pid, info.Exe, info.ExeDeleted, err, bin)
		}
	}
}

// TestDeletedReleaseDir: workers start in a "current" symlink; the release
// it pointed to is switched and deleted before USR2, and the new
// generation starts in the new release.
func TestDeletedReleaseDir(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	r1, r2 := filepath.Join(h.dir, "r1"), filepath.Join(h.dir, "r2")
	for _, d := range []string{r1, r2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	current := filepath.Join(h.dir, "current")
	if err := os.Symlink(r1, current); err != nil {
		t.Fatal(err)
	}
	h.opts.Dir = "current" // relative to where baton started: h.dir
	h.start()
	old := h.pid
	st := h.waitReady(old)
	if got := strings.TrimSpace(h.get(st, "/cwd")); got != r1 {
		t.Fatalf("worker cwd %q, want %q", got, r1)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", old)); cwd != "/" {
		t.Errorf("master's cwd %q, want / (never pin a release)", cwd)
	}
	if err := os.Symlink(r2, current+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(current+".tmp", current); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(r1); err != nil {
		t.Fatal(err)
	}
	h.signal(old, syscall.SIGUSR2)
	var nw int
	h.waitFor("new pid file", func() bool {
		nw = pidInFile(t, h.opts.PIDFile)
		return nw != 0 && nw != old
	})
	ns := h.waitReady(nw)
	h.signal(old, syscall.SIGQUIT)
	h.waitGone(old)
	if got := strings.TrimSpace(h.get(ns, "/cwd")); got != r2 {
		t.Errorf("new worker cwd %q, want %q", got, r2)
	}
	if ns.Dir != current {
		t.Errorf("status dir %q, want %q", ns.Dir, current)
	}
}

// TestUpgradeRefused: USR2 with the baton program or the directory missing
// leaves the master as it was, pid file included.
func TestUpgradeRefused(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "baton")
	copyFile(t, self, bin)
	h := newHarness(t, testOpts{Workers: 1}, bin)
	dir := filepath.Join(h.dir, "release")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.opts.Dir = dir
	h.start()
	for _, tc := range []struct {
		name   string
		break_ func()
		fix    func()
		log    string
	}{
		{name: "binary-missing", break_: func() { os.Rename(bin, bin+".away") }, fix: func() { os.Rename(bin+".away", bin) },
			log: "USR2 refused: the baton program is missing"},
		{name: "dir-missing", break_: func() { os.Rename(dir, dir+".away") }, fix: func() { os.Rename(dir+".away", dir) },
			log: "USR2 refused: the working directory is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_()
			defer tc.fix()
			before := children(t, h.pid)
			h.signal(h.pid, syscall.SIGUSR2)
			h.waitFor("refusal logged", func() bool {
				data, _ := os.ReadFile(h.log)
				return strings.Contains(string(data), tc.log)
			})
			if got := pidInFile(t, h.opts.PIDFile); got != h.pid {
				t.Errorf("pid file holds %d, want %d", got, h.pid)
			}
			if _, err := os.Stat(pidfile.OldbinPath(h.opts.PIDFile)); !os.IsNotExist(err) {
				t.Errorf(".oldbin appeared: %v", err)
			}
			if got := children(t, h.pid); !slices.Equal(got, before) {
				t.Errorf("children %v -> %v", before, got)
			}
		})
	}
}

// TestCrashLoop: workers that die at once are restarted with backoff and
// flagged; the generation is never reported ready; a HUP with a fixed
// envfile recovers.
func TestCrashLoop(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1, BackoffMax: 200 * time.Millisecond}, "")
	h.opts.EnvFile = filepath.Join(h.dir, "app.env")
	writeFile(t, h.opts.EnvFile, "WORKER_MODE=crash\n")
	h.startNoWait()
	st := h.waitStatus(h.pid, "crash loop", func(s statusfile.Master) bool { return s.CrashLoop })
	if st.Ready {
		t.Errorf("a crash-looping generation is reported ready: %+v", st)
	}
	if h.sd.said(h.pid, "READY=1") {
		t.Errorf("READY=1 sent for a generation that never got ready")
	}
	writeFile(t, h.opts.EnvFile, "WORKER_MODE=\n")
	h.signal(h.pid, syscall.SIGHUP)
	st = h.waitStatus(h.pid, "recovered", func(s statusfile.Master) bool { return s.Ready && !s.CrashLoop })
	if body := h.get(st, "/"); !strings.HasPrefix(body, "gen=2 ") {
		t.Errorf("answer %q, want generation 2", body)
	}
}

// TestHUPNeverReady: a new generation that never gets ready does not
// replace the serving one.
func TestHUPNeverReady(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	h.opts.EnvFile = filepath.Join(h.dir, "app.env")
	writeFile(t, h.opts.EnvFile, "WORKER_VERSION=good\n")
	h.start()
	writeFile(t, h.opts.EnvFile, "WORKER_MODE=unready\nWORKER_VERSION=bad\n")
	h.signal(h.pid, syscall.SIGHUP)
	st := h.waitStatus(h.pid, "generation 2 starting", func(s statusfile.Master) bool {
		return s.Generation == 2 && len(workerPIDs(s, "starting")) == 1
	})
	if st.Ready {
		t.Errorf("status ready with an unready generation: %+v", st)
	}
	if len(workerPIDs(st, "ready")) != 1 {
		t.Errorf("the serving generation was stopped: %+v", st.Workers)
	}
	// The old worker still answers: it is the only one that accepts ... but
	// the unready one shares the socket, so look for the good answer.
	h.waitFor("an answer from the good generation", func() bool {
		return strings.Contains(h.get(st, "/"), "version=good")
	})
}

// TestLogReopen: USR1 reopens --log-file after logrotate moved it.
func TestLogReopen(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	h.opts.LogFile = filepath.Join(h.dir, "baton.log")
	h.start()
	if err := os.Rename(h.opts.LogFile, h.opts.LogFile+".1"); err != nil {
		t.Fatal(err)
	}
	h.signal(h.pid, syscall.SIGUSR1)
	h.waitFor("a fresh log file", func() bool {
		data, err := os.ReadFile(h.opts.LogFile)
		return err == nil && strings.Contains(string(data), "log file reopened")
	})
	old, _ := os.ReadFile(h.opts.LogFile + ".1")
	if !strings.Contains(string(old), "master started") {
		t.Errorf("rotated log lacks the start: %q", old)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestBadListenBindsNothing: one bad spec among good ones fails before
// anything is bound or written.
func TestBadListenBindsNothing(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "good.sock")
	pf := filepath.Join(dir, "app.pid")
	err := master.Run(context.Background(), master.Options{
		PIDFile: pf, Listen: []string{"unix:" + sock, "example.com:80", "127.0.0.1:0"}, Command: []string{"true"},
	})
	if !errors.Is(err, master.ErrBadListen) || !strings.Contains(err.Error(), `"example.com:80"`) {
		t.Fatalf("err = %v, want ErrBadListen naming the spec", err)
	}
	for _, p := range []string{sock, pf} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a refused start: %v", p, err)
		}
	}
}

// TestSecondMasterFailsFast: a second master on the same pid file fails
// naming the running pid, before it binds anything.
func TestSecondMasterFailsFast(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	h.start()
	sock := filepath.Join(h.dir, "second.sock")
	err := master.Run(context.Background(), master.Options{
		PIDFile: h.opts.PIDFile, Listen: []string{"unix:" + sock}, Command: []string{"true"},
	})
	if !errors.Is(err, pidfile.ErrRunning) || !strings.Contains(err.Error(), strconv.Itoa(h.pid)) {
		t.Fatalf("err = %v, want ErrRunning naming pid %d", err, h.pid)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the second master bound its socket: %v", err)
	}
	if got := pidInFile(t, h.opts.PIDFile); got != h.pid {
		t.Errorf("pid file holds %d, want %d", got, h.pid)
	}
}

// TestSystemdSocketActivation: sockets passed with LISTEN_FDS/LISTEN_PID are
// used (same inode), not bound again, and matched by address.
func TestSystemdSocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, testOpts{Workers: 1}, "")
	h.opts.Listen = []string{"web=" + ln.Addr().String()}
	h.systemdFiles = []*os.File{f}
	h.extraEnv = []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=web"}
	h.start()
	s := h.waitReady(h.pid)
	if s.Listeners[0].Inode != st.Ino || s.Listeners[0].Name != "web" {
		t.Errorf("listener %+v, want systemd's socket inode %d named web", s.Listeners[0], st.Ino)
	}
	if body := h.get(s, "/"); !strings.HasPrefix(body, "gen=1 ") {
		t.Errorf("answer %q", body)
	}
	data, _ := os.ReadFile(h.log)
	if !strings.Contains(string(data), "inherited from systemd") {
		t.Errorf("log does not say the socket came from systemd")
	}
}

// TestStopTimeout: a worker that ignores the stop signal is killed after
// --stop-timeout, and the master still exits cleanly.
func TestStopTimeout(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1, StopTimeout: 200 * time.Millisecond}, "")
	h.opts.EnvFile = filepath.Join(h.dir, "app.env")
	writeFile(t, h.opts.EnvFile, "WORKER_MODE=stubborn\n")
	h.start()
	st := h.waitReady(h.pid)
	w := workerPIDs(st, "ready")[0]
	h.signal(h.pid, syscall.SIGQUIT)
	h.waitGone(w)
	h.waitGone(h.pid)
	data, _ := os.ReadFile(h.log)
	for _, want := range []string{"ignoring SIGTERM as asked", "did not stop in time; killing", "master exited"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if _, err := os.Stat(h.opts.PIDFile); !os.IsNotExist(err) {
		t.Errorf("pid file after exit: %v", err)
	}
}

// TestConfigFile: the config file is re-read on HUP (worker count) and by the
// new master on USR2 (an added listener is bound, the old one inherited).
func TestConfigFile(t *testing.T) {
	h := newHarness(t, testOpts{}, "")
	h.opts.Config = filepath.Join(h.dir, "baton.conf")
	writeFile(t, h.opts.Config, "listen = 127.0.0.1:0\nworkers = 1\n")
	h.opts.Listen = nil // newHarness filled it; the file must be the source
	h.opts.Workers = 0
	h.start()
	st := h.waitReady(h.pid)
	inode := st.Listeners[0].Inode
	if len(st.Workers) != 1 {
		t.Fatalf("workers %v, want 1 from the config file", st.Workers)
	}
	writeFile(t, h.opts.Config, "listen = 127.0.0.1:0\nworkers = 2\n")
	h.signal(h.pid, syscall.SIGHUP)
	h.waitStatus(h.pid, "2 workers", func(s statusfile.Master) bool {
		return s.Ready && len(workerPIDs(s, "ready")) == 2 && s.Generation == 2
	})

	writeFile(t, h.opts.Config, "listen = 127.0.0.1:0\nlisten = admin=unix:admin.sock\nworkers = 1\n")
	h.signal(h.pid, syscall.SIGUSR2)
	var nw int
	h.waitFor("new pid file", func() bool {
		nw = pidInFile(t, h.opts.PIDFile)
		return nw != 0 && nw != h.pid
	})
	ns := h.waitReady(nw)
	if len(ns.Listeners) != 2 || ns.Listeners[0].Inode != inode || ns.Listeners[1].Name != "admin" ||
		ns.Listeners[1].Addr != filepath.Join(h.dir, "admin.sock") {
		t.Errorf("new master's listeners %+v, want the inherited socket %d and a new admin socket", ns.Listeners, inode)
	}
	if len(ns.Workers) != 1 {
		t.Errorf("new master's workers %v, want 1", ns.Workers)
	}
	h.signal(h.pid, syscall.SIGWINCH) // so that only the new generation answers
	h.waitStatus(h.pid, "old master drained", func(s statusfile.Master) bool { return len(s.Workers) == 0 })
	var env []string
	if err := json.Unmarshal([]byte(h.get(ns, "/env")), &env); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(env, "LISTEN_FDNAMES=unknown:admin") || !slices.Contains(env, "LISTEN_FDS=2") {
		t.Errorf("worker environment lacks the two named sockets: %q", env)
	}

	// Commit, then drop the admin socket: the next master closes it, and
	// its file goes once no master serves on it any more.
	h.signal(h.pid, syscall.SIGQUIT)
	h.waitStatus(nw, "committed", func(s statusfile.Master) bool { return !s.UpgradePending })
	admin := filepath.Join(h.dir, "admin.sock")
	writeFile(t, h.opts.Config, "listen = 127.0.0.1:0\nworkers = 1\n")
	h.signal(nw, syscall.SIGUSR2)
	var third int
	h.waitFor("third pid file", func() bool {
		third = pidInFile(t, h.opts.PIDFile)
		return third != 0 && third != nw
	})
	ts := h.waitReady(third)
	if len(ts.Listeners) != 1 || ts.Listeners[0].Inode != inode {
		t.Errorf("third master's listeners %+v, want only the first socket %d", ts.Listeners, inode)
	}
	if _, err := os.Stat(admin); err != nil {
		t.Errorf("admin socket unlinked while the second master still serves on it: %v", err)
	}
	h.signal(nw, syscall.SIGQUIT)
	h.waitStatus(third, "committed", func(s statusfile.Master) bool { return !s.UpgradePending })
	h.waitFor("the dropped socket file to go", func() bool {
		_, err := os.Stat(admin)
		return os.IsNotExist(err)
	})
}

// TestUserGroup runs the workers as nobody while the master stays root.
func TestUserGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("skipping: needs root to switch users")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // let nobody reach the binary and its directory
	}
	bin := filepath.Join(dir, "baton")
	copyFile(t, self, bin)
	h := newHarness(t, testOpts{Workers: 1, User: "nobody", Group: "nogroup"}, bin)
	os.Chmod(h.dir, 0o755)
	h.start()
	st := h.waitReady(h.pid)
	w := workerPIDs(st, "ready")[0]
	info, err := procs.Info(w)
	if err != nil {
		t.Fatal(err)
	}
	if info.UID != 65534 {
		t.Errorf("worker uid %d, want nobody (65534)", info.UID)
	}
	if m, _ := procs.Info(h.pid); m.UID != 0 {
		t.Errorf("master uid %d, want root", m.UID)
	}
	if body := h.get(st, "/"); !strings.HasPrefix(body, "gen=1 ") {
		t.Errorf("answer %q", body)
	}
	// Pdeathsig survives the switch to nobody: Go sets it after setuid.
	h.signal(h.pid, syscall.SIGKILL)
	h.waitGone(w)
}

// TestRollbackKeepsOldEnv: a rollback (HUP to the old master while the new
// one runs) brings the old generation back with the envfile values it ran
// with, not the new release's; a HUP once the new master is gone reads the
// file again.
func TestRollbackKeepsOldEnv(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	h.opts.EnvFile = filepath.Join(h.dir, "app.env")
	writeFile(t, h.opts.EnvFile, "WORKER_VERSION=v1\n")
	h.start()
	old := h.pid
	writeFile(t, h.opts.EnvFile, "WORKER_VERSION=v2\n")
	h.signal(old, syscall.SIGUSR2)
	var nw int
	h.waitFor("new pid file", func() bool {
		nw = pidInFile(t, h.opts.PIDFile)
		return nw != 0 && nw != old
	})
	h.waitReady(nw)
	h.signal(old, syscall.SIGWINCH)
	h.waitStatus(old, "old drained", func(s statusfile.Master) bool { return len(s.Workers) == 0 })
	ns, _ := h.statusOf(nw)
	if body := h.get(ns, "/"); !strings.Contains(body, "version=v2") {
		t.Fatalf("new release answers %q, want v2", body)
	}
	h.signal(old, syscall.SIGHUP)
	h.waitStatus(old, "old serving again", func(s statusfile.Master) bool { return s.Ready && len(s.Workers) == 1 })
	h.signal(nw, syscall.SIGQUIT)
	h.waitGone(nw)
	st := h.waitStatus(old, "sole master", func(s statusfile.Master) bool { return !s.UpgradePending && s.Ready })
	if body := h.get(st, "/"); !strings.Contains(body, "version=v1") {
		t.Errorf("rolled-back generation answers %q, want the old v1", body)
	}
	h.signal(old, syscall.SIGHUP)
	gen := st.Generation
	st = h.waitStatus(old, "a reloaded generation", func(s statusfile.Master) bool {
		return s.Ready && s.Generation > gen && len(s.Workers) == 1 && s.Workers[0].Generation > gen
	})
	if body := h.get(st, "/"); !strings.Contains(body, "version=v2") {
		t.Errorf("after a plain HUP the answer is %q, want the envfile's v2", body)
	}
}
