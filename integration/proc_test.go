package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// This file is the harness's own view of processes, read from /proc. It
// deliberately does not use package procs: the tests check baton's work
// with independent eyes.

// proc is one process as /proc shows it.
type proc struct {
	pid, ppid, pgid, sid int
	state                byte
	start                uint64 // clock ticks since boot (stat field 22)
	cmdline              string
}

// zombie reports an exited, unreaped process.
func (p proc) zombie() bool { return p.state == 'Z' || p.state == 'X' }

// readProc reads /proc/PID/stat (and the command line).
func readProc(pid int) (proc, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, err
	}
	// comm may hold spaces and ')': the fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return proc{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return proc{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	p := proc{pid: pid, state: f[0][0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgid, _ = strconv.Atoi(f[2])
	p.sid, _ = strconv.Atoi(f[3])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	if cl, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil {
		p.cmdline = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
	}
	return p, nil
}

// alive reports whether pid runs (exists and is not a zombie).
func alive(pid int) bool {
	p, err := readProc(pid)
	return err == nil && !p.zombie()
}

// allProcs lists every process in /proc.
func allProcs() map[int]proc {
	ents, _ := os.ReadDir("/proc")
	out := make(map[int]proc, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil {
			out[pid] = p
		}
	}
	return out
}

// descendants returns the processes below root in table.
func descendants(table map[int]proc, root int) []proc {
	kids := map[int][]int{}
	for _, p := range table {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, k := range kids[pid] {
			out = append(out, table[k])
			queue = append(queue, k)
		}
	}
	return out
}

// children returns the live children of pid.
func children(pid int) []proc {
	var out []proc
	for _, p := range allProcs() {
		if p.ppid == pid && !p.zombie() {
			out = append(out, p)
		}
	}
	return out
}

// environHas reports whether pid's initial environment holds kv exactly.
func environHas(pid int, kv string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(data, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// exeInode returns the inode of the executable pid runs.
func exeInode(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/exe", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// reaper reaps orphans re-parented to this subreaper, as init would, and
// as promptly: a server may probe its old master with kill(pid, 0), which
// succeeds on a zombie (gunicorn's new master crashes at promotion when its
// old pid file names an unreaped zombie). It must never steal the exit
// status of a child some exec.Cmd waits for (its Wait would fail), so it
// skips the children startManaged started, reaps at once a zombie child in
// another session (a daemon or a master forked by one: nothing here started
// it directly), and any other zombie child only once it has stayed a zombie
// for reapAfter — a waiting exec.Cmd reaps its child at once (tests
// elsewhere in the package may start processes with plain os/exec).
var reaper struct {
	mu      sync.Mutex
	managed map[int]bool
	zombies map[proc]time.Time // first seen as a zombie (pid and start ticks)
}

const reapAfter = 2 * time.Second

// startReaper reaps on SIGCHLD, and every 500ms as a backstop.
func startReaper() (stop func()) {
	reaper.managed = map[int]bool{}
	reaper.zombies = map[proc]time.Time{}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-sigs:
			case <-tick.C:
			}
			reapOrphans()
		}
	}()
	return func() {
		close(done)
		<-finished
		signal.Stop(sigs)
	}
}

// reapOrphans reaps the zombie children the rules above allow.
func reapOrphans() {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	if reaper.zombies == nil {
		return // no reaper running
	}
	self, err := readProc(os.Getpid())
	if err != nil {
		return
	}
	now := time.Now()
	seen := map[proc]bool{}
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(s)
			if err != nil || reaper.managed[pid] {
				continue
			}
			p, err := readProc(pid)
			if err != nil || !p.zombie() || p.ppid != self.pid {
				continue
			}
			key := proc{pid: p.pid, start: p.start}
			seen[key] = true
			first, ok := reaper.zombies[key]
			if !ok {
				reaper.zombies[key] = now
				first = now
			}
			if p.sid != self.sid || now.Sub(first) >= reapAfter {
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			}
		}
	}
	for k := range reaper.zombies {
		if !seen[k] {
			delete(reaper.zombies, k)
		}
	}
}

// startManaged starts cmd and keeps the reaper off it until cmd.Wait
// returns, which the returned channel reports.
func startManaged(cmd *exec.Cmd) (<-chan error, error) {
	reaper.mu.Lock()
	err := cmd.Start()
	if err == nil {
		reaper.managed[cmd.Process.Pid] = true
	}
	reaper.mu.Unlock()
	if err != nil {
		return nil, err
	}
	waited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		reaper.mu.Lock()
		delete(reaper.managed, cmd.Process.Pid)
		reaper.mu.Unlock()
		waited <- err
	}()
	return waited, nil
}

// outputPipe makes *out (a command's Stdout or Stderr) a pipe whose read
// end the caller owns, for a command started with startManaged: call
// started once it started. (Not cmd.StdoutPipe or StderrPipe: startManaged
// calls cmd.Wait at once, and Wait closes their read end as soon as the process exits, racing the reader for
// the last lines it wrote, which are then lost to "file already closed".)
// The output stays readable to EOF after the process exited.
func outputPipe(t testing.TB, out *io.Writer) (r *os.File, started func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	*out = w
	t.Cleanup(func() { w.Close(); r.Close() })
	// Once the child holds its copy, the parent's must go: EOF comes when
	// the last write end closes.
	return r, func() { w.Close() }
}

// owner is the set of processes one test is responsible for: those it
// started, those it learnt of (masters read from pid files) with their
// descendants, sessions and process groups, and those carrying its marker
// in their environment. Its methods are safe for concurrent use.
type owner struct {
	marker string // envOwner=VALUE
	mu     sync.Mutex
	ids    map[int]uint64 // pid -> start ticks
	groups map[int]bool   // session and process-group ids
}

var ownerSeq struct {
	mu sync.Mutex
	n  int
}

// ownerOf returns the owner of t's processes, creating it (and the cleanup
// that kills them all) on first use.
func ownerOf(t testing.TB) *owner {
	t.Helper()
	owners.mu.Lock()
	defer owners.mu.Unlock()
	if o, ok := owners.m[t.Name()]; ok {
		return o
	}
	ownerSeq.mu.Lock()
	ownerSeq.n++
	n := ownerSeq.n
	ownerSeq.mu.Unlock()
	o := &owner{
		marker: fmt.Sprintf("%s=%s/%d", envOwner, runID, n),
		ids:    map[int]uint64{},
		groups: map[int]bool{},
	}
	owners.m[t.Name()] = o
	t.Cleanup(func() {
		if left := o.killAll(); len(left) > 0 {
			t.Errorf("processes still alive after SIGKILL: %v", left)
		}
		owners.mu.Lock()
		delete(owners.m, t.Name())
		owners.mu.Unlock()
	})
	return o
}

var owners = struct {
	mu sync.Mutex
	m  map[string]*owner
}{m: map[string]*owner{}}

// adopt makes pid (a process below the test binary) one of the owner's, with
// its session and process group unless they are the test binary's own.
func (o *owner) adopt(pid int) {
	p, err := readProc(pid)
	if err != nil || !isOurs(pid) {
		return
	}
	self, _ := readProc(os.Getpid())
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ids[pid] = p.start
	for _, g := range []int{p.sid, p.pgid} {
		if g > 1 && g != self.sid && g != self.pgid {
			o.groups[g] = true
		}
	}
}

// isOurs reports whether pid descends from the test binary: the harness
// never signals anything else.
func isOurs(pid int) bool {
	self := os.Getpid()
	for i := 0; i < 64 && pid > 1; i++ {
		p, err := readProc(pid)
		if err != nil {
			return false
		}
		if p.ppid == self {
			return true
		}
		pid = p.ppid
	}
	return false
}

// members lists the owner's live processes, as of now.
func (o *owner) members() []proc {
	table := allProcs()
	mine := map[int]bool{}
	o.mu.Lock()
	for pid, start := range o.ids {
		if p, ok := table[pid]; ok && p.start == start {
			mine[pid] = true
		}
	}
	groups := make(map[int]bool, len(o.groups))
	for g := range o.groups {
		groups[g] = true
	}
	o.mu.Unlock()
	var out []proc
	for _, p := range descendants(table, os.Getpid()) {
		if p.zombie() {
			continue
		}
		if mine[p.pid] || groups[p.sid] || groups[p.pgid] || environHas(p.pid, o.marker) || hasAncestor(table, p, mine) {
			out = append(out, p)
		}
	}
	return out
}

func hasAncestor(table map[int]proc, p proc, set map[int]bool) bool {
	for i := 0; i < 64; i++ {
		q, ok := table[p.ppid]
		if !ok {
			return false
		}
		if set[q.pid] {
			return true
		}
		p = q
	}
	return false
}

// killAll SIGKILLs the owner's processes until none is left (within 10s) and
// returns those that survived.
func (o *owner) killAll() []proc {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms := o.members()
		if len(ms) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return ms
		}
		for _, p := range ms {
			unix.Kill(p.pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // let the kernel deliver, then look again
	}
}

// sweepAll kills every process below the test binary that is not a test's
// own bookkeeping (there is none left at the end of the run) and returns
// what was alive.
func sweepAll() []proc {
	var left []proc
	for round := 0; round < 50; round++ {
		var live []proc
		for _, p := range descendants(allProcs(), os.Getpid()) {
			if !p.zombie() {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return left
		}
		if round == 0 {
			left = live
		}
		for _, p := range live {
			unix.Kill(p.pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return left
}

// testContext returns a context that ends 10% (at least 5s) before the
// test's deadline, or after 5 minutes when there is none, so a hung wait
// fails the test with a message instead of the whole binary timing out.
func testContext(t testing.TB) context.Context {
	t.Helper()
	d := 5 * time.Minute
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := tt.Deadline(); ok {
			left := time.Until(dl)
			d = left - max(left/10, 5*time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// errTimeout is what waitFor reports when the condition never held.
var errTimeout = errors.New("timed out")

// waitFor polls cond every 10ms (it looks at observable state: a pid file,
// /proc, an HTTP answer) until it holds, ctx ends or limit passes. The last
// error cond returned is part of the failure.
func waitFor(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w after %s: %w", errTimeout, limit, last)
			}
			return fmt.Errorf("%w after %s", errTimeout, limit)
		case <-tick.C:
		}
	}
}

// mustWait is waitFor that fails the test with what it waited for.
func mustWait(ctx context.Context, t testing.TB, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := waitFor(ctx, limit, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// readPid reads a pid file strictly: one decimal pid, optional newline. A
// path that is not a regular file (a planted FIFO) is an error, never a
// blocking open.
func readPid(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("pid file %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSuffix(string(data), "\n")
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds %q", path, data)
	}
	return pid, nil
}

// inodeOf returns the inode of a file.
func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
