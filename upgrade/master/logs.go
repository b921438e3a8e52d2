//go:build linux

package master

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// logs are the files a master writes: its own log (--log-file) and its
// workers' output (--worker-log-file). Both are opened by path at start and
// reopened on USR1 once logrotate has moved them; one path given for both
// is one file, opened once, where each write is a whole line.
type logs struct {
	master  *reopener // nil: stderr, or Options.Logger
	workers *reopener // nil: workers write to the master's stdout and stderr
	copies  *copiers  // nil with workers nil
}

// openLogs opens cfg's log files; own is false when Options.Logger takes
// the master's log, which then opens no file of its own.
func openLogs(cfg *config, own bool) (*logs, error) {
	l := &logs{}
	if own && cfg.logFile != "" {
		r, err := openReopener(cfg.logFile)
		if err != nil {
			return nil, err
		}
		l.master = r
	}
	switch {
	case cfg.workerLog == "":
	case l.master != nil && cfg.workerLog == cfg.logFile:
		l.workers = l.master
	default:
		r, err := openReopener(cfg.workerLog)
		if err != nil {
			l.close()
			return nil, err
		}
		l.workers = r
	}
	if l.workers != nil {
		l.copies = &copiers{dst: l.workers, live: map[*os.File]bool{}}
	}
	return l, nil
}

// logger is the master's logger in format ("text" or "json") on its log
// file, else on stderr.
func (l *logs) logger(format string) *slog.Logger {
	var w io.Writer = os.Stderr
	if l.master != nil {
		w = l.master
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// files lists the open log files, each once.
func (l *logs) files() []*reopener {
	var out []*reopener
	for _, r := range []*reopener{l.master, l.workers} {
		if r != nil && (len(out) == 0 || out[0] != r) {
			out = append(out, r)
		}
	}
	return out
}

// workerStdio is what a worker about to start gets as its stdout and
// stderr; call started with whether it started. Without a worker log they
// are the master's own.
func (l *logs) workerStdio() (stdout, stderr *os.File, started func(bool), err error) {
	if l.copies == nil {
		return os.Stdout, os.Stderr, func(bool) {}, nil
	}
	w, started, err := l.copies.pipe()
	return w, w, started, err
}

// close copies what the workers left in their pipes, then closes the
// files. Call it once, after the last worker is gone.
func (l *logs) close() {
	if l.copies != nil {
		l.copies.close()
	}
	for _, r := range l.files() {
		r.close()
	}
}

// reopener is an io.Writer on a file that can be reopened (logrotate). Its
// methods are safe for concurrent use; each Write is one write(2) under
// its lock, so whole lines from several writers never interleave.
type reopener struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openReopener(path string) (*reopener, error) {
	r := &reopener{path: path}
	if err := r.reopen(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return r, nil
}

// reopen opens the path again (appending, created 0644 if missing) and
// closes the file it replaces; on error the old file stays in use.
func (r *reopener) reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopener) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

func (r *reopener) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.f.Close()
}

// maxLine bounds the part of a line a copier holds back waiting for its
// newline: a longer line is written in pieces.
const maxLine = 64 << 10

// copiers carry the workers' output to dst, one pipe and one goroutine per
// worker, so that each worker's lines arrive whole and in its order
// whatever the others write (a pipe shared by all workers would splice one
// worker's half line into another's). A pipe ends when the worker and all
// it started have closed it, not when the worker is reaped.
type copiers struct {
	dst *reopener
	log *slog.Logger // reports failed writes; set before the first pipe

	mu      sync.Mutex
	live    map[*os.File]bool // read ends being copied
	closed  bool
	failing bool  // the last write to dst failed
	dropped int64 // bytes lost since the writes began failing
	wg      sync.WaitGroup
}

// pipe makes a worker's pipe: w is the write end, blocking as a program
// expects its stdout to be (the read end is non-blocking for Go's poller,
// and a dup'd descriptor would share that flag). started closes the
// master's copy of w and, if the worker started, copies the read end.
func (c *copiers) pipe() (w *os.File, started func(bool), err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("worker output pipe: %w", err)
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, nil, fmt.Errorf("worker output pipe: %w", err)
	}
	r := os.NewFile(uintptr(p[0]), "worker output")
	w = os.NewFile(uintptr(p[1]), "worker output")
	return w, func(ok bool) {
		w.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		if !ok || c.closed {
			r.Close()
			return
		}
		c.live[r] = true
		c.wg.Add(1)
		go c.copy(r)
	}, nil
}

// copy copies r to dst until every writer has closed it, or close stops it
// by a read deadline and it takes what is left in the pipe.
func (c *copiers) copy(r *os.File) {
	defer c.wg.Done()
	var pending []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		pending = c.lines(append(pending, buf[:n]...), false)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			pending = append(pending, drain(r, buf)...)
			err = io.EOF
		}
		if err != nil {
			c.lines(pending, true)
			break
		}
	}
	c.mu.Lock()
	delete(c.live, r)
	c.mu.Unlock()
	r.Close()
}

// drain reads what r's pipe holds without waiting for more.
func drain(r *os.File, buf []byte) []byte {
	var out []byte
	r.SetReadDeadline(time.Time{}) // RawConn.Read refuses to run past one
	rc, err := r.SyscallConn()
	if err != nil {
		return nil
	}
	rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.Read(int(fd), buf)
			if err == nil && n > 0 {
				out = append(out, buf[:n]...)
				continue
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return true // EOF, or EAGAIN: empty; never wait
		}
	})
	return out
}

// lines writes the whole lines at the start of p (all of p when final,
// ended with a newline, or when it is maxLine long) and returns the rest,
// moved to the start of p.
func (c *copiers) lines(p []byte, final bool) []byte {
	end := bytes.LastIndexByte(p, '\n') + 1
	if final || len(p) >= maxLine {
		end = len(p)
	}
	if end == 0 {
		return p
	}
	out := p[:end]
	if final && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	c.write(out)
	return p[:copy(p, p[end:])]
}

// write writes one chunk of whole lines to dst; a failure is logged when
// the writes begin failing and when they work again, with what was lost.
func (c *copiers) write(p []byte) {
	_, err := c.dst.Write(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil && !c.failing:
		c.failing, c.dropped = true, int64(len(p))
		c.log.Error("writing worker output; dropping it until writes work again", "path", c.dst.path, "err", err)
	case err != nil:
		c.dropped += int64(len(p))
	case c.failing:
		c.failing = false
		c.log.Warn("writing worker output works again", "path", c.dst.path, "dropped_bytes", c.dropped)
	}
}

// close stops the copies once what the pipes hold is written: a pipe that
// a process outside the workers' groups still holds (one that left with
// setsid) would never end by itself. Call it after the last worker is gone.
func (c *copiers) close() {
	c.mu.Lock()
	c.closed = true
	for r := range c.live {
		r.SetReadDeadline(time.Now())
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// reopen reopens the log files and passes the signal to the workers (USR1).
func (m *master) reopen() {
	for _, r := range m.logs.files() {
		if err := r.reopen(); err != nil {
			m.log.Error("reopening log file", "path", r.path, "err", err)
		} else {
			m.log.Info("log file reopened", "path", r.path)
		}
	}
	for _, w := range m.workers {
		if err := signalGroup(w, sigReopen); err != nil {
			m.log.Warn("signal worker", "pid", w.pid, "err", err)
		}
	}
}
