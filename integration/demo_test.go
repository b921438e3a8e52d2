package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// demoReport mirrors the JSON report of `baton demo --json`
// (cmd/baton/internal/demo's Report), decoded independently.
type demoReport struct {
	Addr  string `json:"addr"`
	Steps []struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
		Note string `json:"note"`
	} `json:"steps"`
	Served      int            `json:"served"`
	Failed      int            `json:"failed"`
	Races       int            `json:"races"`
	Failures    map[string]int `json:"failures"`
	Samples     []string       `json:"samples"`
	ByVersion   map[string]int `json:"by_version"`
	RolledBack  bool           `json:"rolled_back"`
	Final       string         `json:"final_version"`
	FinalMaster int            `json:"final_master"`
	Stopped     int            `json:"processes_stopped"`
	Left        []int          `json:"processes_left"`
	Error       string         `json:"error"`
}

// startDemo starts `baton demo --json` from the built binary with its
// temporary directory under a fresh TMPDIR, and returns the command, the
// channel its Wait result arrives on, its stdout, and a reader of its
// progress (stderr).
func startDemo(t *testing.T) (cmd *exec.Cmd, waited <-chan error, stdout *bytes.Buffer, progress io.Reader, tmp string) {
	t.Helper()
	tmp = t.TempDir()
	o := ownerOf(t)
	cmd = exec.Command(batonBin, "demo", "--json")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, o.marker)
	stdout = &bytes.Buffer{}
	cmd.Stdout = stdout
	pr, started := outputPipe(t, &cmd.Stderr)
	// Its own process group, like an interactive shell's job: the test
	// sends it signals the way a terminal would.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	waited, err := startManaged(cmd)
	if err != nil {
		t.Fatalf("start baton demo: %v", err)
	}
	started()
	o.adopt(cmd.Process.Pid)
	return cmd, waited, stdout, pr, tmp
}

// wantNothingLeft checks that no process the demo started is alive and that
// it removed its temporary directory.
func wantNothingLeft(t *testing.T, tmp string) {
	t.Helper()
	if ms := ownerOf(t).members(); len(ms) > 0 {
		for _, p := range ms {
			t.Errorf("left running: pid %d ppid %d: %s", p.pid, p.ppid, p.cmdline)
		}
	}
	for _, p := range allProcs() {
		if !p.zombie() && strings.Contains(p.cmdline, tmp) {
			t.Errorf("left running: pid %d: %s", p.pid, p.cmdline)
		}
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) > 0 {
		t.Errorf("temp dir %s not cleaned up: %v %v", tmp, ents, err)
	}
}

// TestDemo runs `baton demo` end to end, as the README's first command does,
// and checks its report against what it promises: requests served and none
// failed, v2 committed, the broken v3 rolled back automatically, v2 serving
// at the end, and nothing left running.
func TestDemo(t *testing.T) {
	ctx := testContext(t)
	cmd, waited, stdout, progress, tmp := startDemo(t)
	var log bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&log, progress)
		close(copied)
	}()
	var err error
	select {
	case err = <-waited:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-waited
		t.Fatalf("baton demo did not finish in time; progress:\n%s", log.String())
	}
	<-copied
	t.Logf("baton demo progress:\n%s", log.String())
	if err != nil {
		t.Errorf("baton demo: %v (want exit 0)", err)
	}
	var rep demoReport
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("report is not JSON: %v\n%s", jerr, stdout.String())
	}
	if rep.Error != "" {
		t.Errorf("report error: %s", rep.Error)
	}
	if rep.Served == 0 {
		t.Errorf("served %d requests, want some", rep.Served)
	}
	if rep.Failed != 0 {
		t.Errorf("failed %d requests, want 0: %v %q", rep.Failed, rep.Failures, rep.Samples)
	}
	for _, v := range []string{"v1", "v2"} {
		if rep.ByVersion[v] == 0 {
			t.Errorf("no request served by %s (by version: %v)", v, rep.ByVersion)
		}
	}
	if !rep.RolledBack {
		t.Errorf("broken v3 not reported rolled back")
	}
	if rep.Final != "v2" || rep.FinalMaster <= 0 {
		t.Errorf("serving at the end: %q (master %d), want v2", rep.Final, rep.FinalMaster)
	}
	wantSteps := []string{"start baton run", "upgrade start → v2", "upgrade commit", "upgrade start → v3", "stop everything"}
	for _, want := range wantSteps {
		found := false
		for _, st := range rep.Steps {
			if strings.HasPrefix(st.Name, want) {
				found = true
				if !st.OK {
					t.Errorf("step %q failed: %s", st.Name, st.Note)
				}
			}
		}
		if !found {
			t.Errorf("step %q missing from the report", want)
		}
	}
	if len(rep.Left) != 0 || rep.Stopped == 0 {
		t.Errorf("report: %d processes stopped, left %v", rep.Stopped, rep.Left)
	}
	for _, want := range []string{"$ baton upgrade start", "$ baton upgrade commit"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress does not show %q", want)
		}
	}
	wantNothingLeft(t, tmp)
}

// TestDemoInterrupted presses Ctrl-C (SIGINT to the demo's process group,
// as a terminal does) while the first upgrade is under way: the demo must
// stop everything it started, remove its directory and exit non-zero.
func TestDemoInterrupted(t *testing.T) {
	ctx := testContext(t)
	cmd, waited, _, progress, tmp := startDemo(t)
	lines := bufio.NewScanner(progress)
	var log strings.Builder
	sent := false
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if !sent && strings.Contains(lines.Text(), "$ baton upgrade start") {
			if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
	}
	var err error
	select {
	case err = <-waited:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-waited
		t.Fatalf("baton demo did not stop after SIGINT; progress:\n%s", log.String())
	}
	t.Logf("baton demo progress:\n%s", log.String())
	if !sent {
		t.Fatalf("the demo never reached its first upgrade (exit: %v)", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("baton demo after SIGINT: %v, want a non-zero exit", err)
	}
	// The demo waits for its processes before it exits, so its own cleanup
	// must have done the job: look before the test's cleanup kills anything.
	wantNothingLeft(t, tmp)
}

// TestDemoOutputClosed closes the demo's progress output after its first
// line, as `baton demo | head -1` does: the demo must not die of SIGPIPE
// with its masters still running, but stop everything and exit non-zero.
func TestDemoOutputClosed(t *testing.T) {
	ctx := testContext(t)
	cmd, waited, _, progress, tmp := startDemo(t)
	line, err := bufio.NewReader(progress).ReadString('\n')
	if err != nil {
		t.Fatalf("first progress line: %v", err)
	}
	t.Logf("first line: %s", line)
	progress.(io.Closer).Close()
	select {
	case err = <-waited:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-waited
		t.Fatal("baton demo did not stop after its output was closed")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("baton demo with its output closed: %v, want a non-zero exit", err)
	} else if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Errorf("baton demo was killed by %v instead of stopping what it started", ws.Signal())
	}
	wantNothingLeft(t, tmp)
}
