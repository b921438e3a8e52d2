package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// masterArgs start the first master (see demo.expand).
var masterArgs = []string{"run", "--pidfile", "$DIR/" + pidName, "--listen", "$ADDR",
	"--workers", "$WORKERS", "--ready", "notify", "--envfile", "$DIR/" + envName,
	"--stop-timeout", "5s", "--", "$EXE", "demo-app"}

// startMaster starts `baton run` on a free loopback port and waits until it
// reports ready and answers. The port is picked by binding port 0 and
// closing it; another program may take it in between, so a master that exits
// before it is ready is retried on a new port.
func (d *demo) startMaster(ctx context.Context) error {
	var lastErr error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			return err
		}
		d.addr, d.rep.Addr = addr, addr
		args := d.expand(masterArgs)
		st := &Step{Name: "start baton run, v1", Command: d.display(args)}
		d.out.linef("▶ %s\n  $ %s", st.Name, st.Command)
		begin := time.Now()
		if err := d.launch(args); err != nil {
			return err
		}
		pid, err := d.waitReady(ctx)
		st.Elapsed = time.Since(begin)
		_ = d.tracked.scan() // cleanup scans again and reports a failure
		if err == nil {
			d.serving = pid
			d.pass(st, fmt.Sprintf("master %d ready on http://%s/, %d workers", pid, addr, d.opts.Workers))
			return nil
		}
		lastErr = err
		select {
		case <-d.exited:
			// It died (likely the port was taken): try another port.
			d.out.linef("  ✗ %v; trying another port\n%s", err, tail(d.logfile, 5))
			continue
		default:
		}
		d.fail(st, err.Error())
		d.out.linef("%s", tail(d.logfile, 20))
		return err
	}
	return lastErr
}

// launch starts the master with its output in the log file, and reaps it
// in the background (closing d.exited).
func (d *demo) launch(args []string) error {
	log, err := os.OpenFile(d.logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cmd := exec.Command(d.opts.Exe, args...)
	cmd.Dir = d.dir
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group keeps the terminal's Ctrl-C away from it: the
	// demo stops it in order. Pdeathsig covers the demo being killed
	// outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = cmd.Start()
	log.Close()
	if err != nil {
		return fmt.Errorf("demo: start master: %w", err)
	}
	d.master = cmd
	d.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	return nil
}

// waitReady waits until the pid file names a master whose status says ready
// and the app answers on the port. The master writes its status file on
// every change; there is no event to wait on from outside, so this polls it,
// bounded by a deadline.
func (d *demo) waitReady(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if pid, _ := d.pids(); pid > 0 {
			st, err := statusfile.Read(statusfile.Path(d.pidfile, pid))
			if err == nil && st.Ready {
				if v, err := d.probe(ctx, 1); err == nil && onlyVersion(v, "v1") {
					return pid, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("demo: master not ready: %w", ctx.Err())
		case <-d.exited:
			return 0, fmt.Errorf("demo: master exited before it was ready (%v)", d.master.ProcessState)
		case <-tick.C:
		}
	}
}

func (d *demo) masterPID() int {
	if d.master == nil || d.master.Process == nil {
		return 0
	}
	return d.master.Process.Pid
}

// freePort returns a loopback address with a port nobody listened on a
// moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: find a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// tail returns the last n lines of a log file, indented.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "    (no master log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    master log: " + strings.Join(lines, "\n    ")
}
