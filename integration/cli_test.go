package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/schematest"
)

// cmdResult is a finished run of the baton binary.
type cmdResult struct {
	Args    []string
	Code    int // exit code; -1 when killed by a signal
	Stdout  string
	Stderr  string
	Elapsed time.Duration
}

// wantCode fails the test unless the exit code is one of codes.
func (r cmdResult) wantCode(t testing.TB, codes ...int) {
	t.Helper()
	if !slices.Contains(codes, r.Code) {
		t.Errorf("baton %s: exit %d, want %v\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, codes, r.Stdout, r.Stderr)
	}
}

// batonProc is the baton binary running in the background.
type batonProc struct {
	args     []string
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process was waited for
	waitErr  error
	start    time.Time
	out, err syncBuffer
	result   *cmdResult
	quiet    bool // wait logs the result only when baton did not exit 0
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine os/exec runs
// and a test reading it meanwhile.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// batonStart starts the baton binary with args in the background, in its own
// process group, owned by the test (killed at its end at the latest).
func batonStart(ctx context.Context, t testing.TB, args ...string) *batonProc {
	t.Helper()
	return batonStartAs(ctx, t, nil, batonBin, args...)
}

// batonStartAs is batonStart running bin as the user cred names (nil: as
// the test runs).
func batonStartAs(ctx context.Context, t testing.TB, cred *syscall.Credential, bin string, args ...string) *batonProc {
	t.Helper()
	o := ownerOf(t)
	b := &batonProc{args: args}
	b.cmd = execCommand(ctx, bin, args...)
	b.cmd.SysProcAttr.Credential = cred
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.err
	b.cmd.Env = append(os.Environ(), o.marker)
	b.start = time.Now()
	b.done = make(chan struct{})
	waited, err := startManaged(b.cmd)
	if err != nil {
		t.Fatalf("start baton %s: %v", strings.Join(args, " "), err)
	}
	o.adopt(b.cmd.Process.Pid)
	go func() {
		b.waitErr = <-waited
		close(b.done)
	}()
	// A test that fails (or forgets) before waiting still logs what the
	// command printed, which is usually why.
	t.Cleanup(func() {
		if b.result == nil {
			b.cmd.Process.Signal(syscall.SIGKILL)
			b.wait(t)
		}
	})
	return b
}

// execCommand is exec.CommandContext with the harness's defaults: its own
// process group, SIGKILL when ctx ends, and a bounded wait for the output
// pipes (a grandchild holding them must not hang the test).
func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// exited is closed once the process has exited and was waited for.
func (b *batonProc) exited() <-chan struct{} { return b.done }

// pid is the process id of the running baton.
func (b *batonProc) pid() int { return b.cmd.Process.Pid }

// wait waits for baton to exit (ctx bounds the wait: the process is killed
// when ctx ends) and logs the result.
func (b *batonProc) wait(t testing.TB) cmdResult {
	t.Helper()
	if b.result != nil {
		return *b.result
	}
	<-b.done
	err := b.waitErr
	r := cmdResult{Args: b.args, Stdout: b.out.String(), Stderr: b.err.String(), Elapsed: time.Since(b.start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee):
		r.Code = ee.ExitCode() // -1 when killed by a signal
	default:
		r.Code = -1
		t.Errorf("baton %s: %v", strings.Join(b.args, " "), err)
	}
	if !b.quiet || r.Code != 0 {
		t.Logf("baton %s: exit %d after %s\n%s%s", strings.Join(b.args, " "), r.Code, r.Elapsed.Round(time.Millisecond), indent(r.Stdout), indent(r.Stderr))
	}
	b.result = &r
	checkJSON(t, r)
	return r
}

// reportSchema is upgrade/schema/report.v1.json, compiled once.
var reportSchema = sync.OnceValues(func() (*schematest.Schema, error) {
	return schematest.Load(filepath.Join("..", "upgrade", "schema", "report.v1.json"))
})

// checkJSON validates what `baton upgrade VERB --json` printed against the
// schema of the machine interface, with the exit code it exited with. A
// baton killed by a signal printed nothing to check.
func checkJSON(t testing.TB, r cmdResult) {
	t.Helper()
	if len(r.Args) == 0 || r.Args[0] != "upgrade" || !slices.Contains(r.Args, "--json") || r.Code < 0 {
		return
	}
	sch, err := reportSchema()
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate([]byte(r.Stdout)); err != nil {
		t.Errorf("baton %s: --json does not fit the schema: %v", strings.Join(r.Args, " "), err)
		return
	}
	var doc struct {
		ExitCode int `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || doc.ExitCode != r.Code {
		t.Errorf("baton %s: --json says exit_code %d (%v), baton exited %d", strings.Join(r.Args, " "), doc.ExitCode, err, r.Code)
	}
}

// kill sends SIGKILL to the running baton and waits for it.
func (b *batonProc) kill(t testing.TB) cmdResult {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill baton: %v", err)
	}
	return b.wait(t)
}

// batonCmd runs the built baton binary with args to completion (bounded by
// ctx) and returns its exit code and output.
func batonCmd(ctx context.Context, t testing.TB, args ...string) cmdResult {
	t.Helper()
	return batonStart(ctx, t, args...).wait(t)
}

// batonCmdQuiet is batonCmd that logs nothing when baton exits 0, for a
// long run's thousands of commands (TestSoak); any other exit is logged
// with baton's output.
func batonCmdQuiet(ctx context.Context, t testing.TB, args ...string) cmdResult {
	t.Helper()
	b := batonStart(ctx, t, args...)
	b.quiet = true
	return b.wait(t)
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  | ") + "\n"
}
