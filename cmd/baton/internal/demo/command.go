package demo

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// baton runs the baton binary with args as a child process, shows its
// output indented, and returns its exit status (-1 when it could not run)
// and the step to complete.
func (d *demo) baton(ctx context.Context, name string, args ...string) (int, *Step) {
	st := &Step{Name: name, Command: d.display(args)}
	d.out.linef("▶ %s\n  $ %s", name, st.Command)
	cmd := exec.CommandContext(ctx, d.opts.Exe, args...)
	cmd.Dir = d.dir
	cmd.Env = d.env
	w := &lineWriter{out: d.out, prefix: "    │ "}
	cmd.Stdout, cmd.Stderr = w, w
	// On Ctrl-C the orchestrator gets TERM (its own group keeps the
	// terminal's INT away) and a bounded time to finish before KILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	begin := time.Now()
	err := cmd.Run()
	st.Elapsed = time.Since(begin)
	w.flush()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
		st.Note = err.Error()
	}
	return code, st
}

// display is a command line as the progress shows it.
func (d *demo) display(args []string) string {
	return "baton " + strings.Join(short(args, d.dir, d.opts.Exe), " ")
}

// short shortens a command line for display: the temp dir becomes $DIR
// and the executable "baton".
func short(args []string, dir, exe string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case a == exe:
			a = "baton"
		case strings.HasPrefix(a, dir):
			a = "$DIR" + strings.TrimPrefix(a, dir)
		}
		out[i] = a
	}
	return out
}

// childEnv is the environment for the demo's children: environ without
// anything that would change what the children do behind the demo's back
// (BATON_* flag defaults, the demo app's DEMO_* settings, a service
// manager's sockets).
func childEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "BATON_"), strings.HasPrefix(name, "DEMO_"),
			strings.HasPrefix(name, "LISTEN_"), name == "NOTIFY_SOCKET", name == "SERVER_STARTER_PORT":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// lineWriter passes a child's output on to the progress line by line. Not
// safe for concurrent use: exec.Cmd serialises writes when Stdout and
// Stderr are the same writer.
type lineWriter struct {
	out    *progress
	prefix string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.out.linef("%s%s", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

// flush passes on a last line without a newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.out.linef("%s%s", w.prefix, w.buf)
		w.buf = nil
	}
}
