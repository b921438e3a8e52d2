package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Mode is how a worker uses connections.
type Mode uint8

const (
	// KeepAlive reuses one connection per worker for as long as the server
	// keeps it open.
	KeepAlive Mode = iota
	// NewConn dials a new connection for every request.
	NewConn
)

func (m Mode) String() string {
	switch m {
	case KeepAlive:
		return "keep-alive"
	case NewConn:
		return "new-conn"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// Failure kinds, the keys of Result.Failures.
const (
	FailRefused = "refused" // connect refused: nobody was accepting
	FailReset   = "reset"   // connection reset by the server
	FailEOF     = "eof"     // connection closed before a complete response
	FailTimeout = "timeout" // no complete response within Options.Timeout
	FailStatus  = "status"  // unexpected status code
	FailBody    = "body"    // the body failed Options.Expect
	FailOther   = "other"   // anything else
)

// Options configures a load run. The zero value of every field is usable.
type Options struct {
	// Target is "http://HOST:PORT/PATH" or "unix:/path/to.sock:/PATH"
	// (the URL path after the last ":/"; "/" when omitted). Required.
	Target string
	// Concurrency is the number of concurrent workers; zero means 4.
	Concurrency int
	// Mode is KeepAlive (the zero value) or NewConn.
	Mode Mode
	// Timeout bounds one request, from dial to the end of the body; zero
	// means 5s.
	Timeout time.Duration
	// Pause is how long each worker waits between its requests; zero means
	// none (as fast as the server answers).
	Pause time.Duration
	// MaxRequests stops the run after that many requests; zero means no
	// limit (until Stop, Duration or the context ends it).
	MaxRequests int
	// Duration stops the run after that long; zero means no limit.
	Duration time.Duration
	// Expect checks a response; nil accepts any 2xx status.
	Expect func(status int, body []byte) error
	// Dial opens a connection to the target ("tcp" or "unix", and the
	// address); nil means a net.Dialer. The context ends at Timeout. A
	// caller that must reach a server in another network namespace dials
	// from there. It is called concurrently by the workers.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is what a run counted.
type Result struct {
	Target      string
	Mode        Mode
	Concurrency int
	Requests    int            // requests made (a race's retry is the same request)
	OK          int            // requests answered as expected
	Failed      int            // requests that failed for real
	Races       int            // keep-alive close races, retried (see package doc)
	Failures    map[string]int // Failed by kind (Fail* constants)
	Samples     []string       // the first few failure messages
	Tags        map[string]int // OK responses by the first line of their body
	P50         time.Duration
	P99         time.Duration
	Max         time.Duration
	Elapsed     time.Duration
}

// String summarises the result on one line.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s c=%d: %d requests, %d ok, %d failed, %d keep-alive races retried",
		r.Mode, r.Concurrency, r.Requests, r.OK, r.Failed, r.Races)
	if r.Failed > 0 {
		kinds := make([]string, 0, len(r.Failures))
		for k, n := range r.Failures {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(&b, " (%s)", strings.Join(kinds, " "))
	}
	fmt.Fprintf(&b, "; latency p50=%s p99=%s max=%s over %s",
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Elapsed.Round(time.Millisecond))
	return b.String()
}

// maxSamples bounds Result.Samples.
const maxSamples = 10

// Run is a load run under way. Stop ends it; its methods are safe for
// concurrent use.
type Run struct {
	opts    Options
	target  target
	cancel  context.CancelFunc
	done    chan struct{}
	started time.Time
	issued  atomic.Int64 // requests begun, for MaxRequests
	ok      atomic.Int64
	failed  atomic.Int64

	mu     sync.Mutex
	result Result
	lat    []time.Duration
	once   sync.Once
	final  Result
}

// Start validates opts and starts the workers. The run ends when ctx ends,
// Duration passes, MaxRequests are made, or Stop is called.
func Start(ctx context.Context, opts Options) (*Run, error) {
	t, err := parseTarget(opts.Target)
	if err != nil {
		return nil, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	var cancel context.CancelFunc
	if opts.Duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	r := &Run{
		opts:    opts,
		target:  t,
		cancel:  cancel,
		done:    make(chan struct{}),
		started: time.Now(),
		result: Result{
			Target:      opts.Target,
			Mode:        opts.Mode,
			Concurrency: opts.Concurrency,
			Failures:    map[string]int{},
			Tags:        map[string]int{},
		},
	}
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(ctx)
		}()
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
	return r, nil
}

// Counts returns the requests answered and failed so far, for progress.
func (r *Run) Counts() (ok, failed int) {
	return int(r.ok.Load()), int(r.failed.Load())
}

// Snapshot returns what the run has counted so far: requests, failures by
// kind, races and tags (no latencies; Elapsed is the time since Start), for
// the periodic reports of a long run. The result is a copy.
func (r *Run) Snapshot() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.result
	res.Failures = maps.Clone(res.Failures)
	res.Tags = maps.Clone(res.Tags)
	res.Samples = slices.Clone(res.Samples)
	res.Elapsed = time.Since(r.started)
	return res
}

// Done is closed when every worker has finished.
func (r *Run) Done() <-chan struct{} { return r.done }

// Stop ends the run, waits for the workers and returns the result. Requests
// in flight finish (within Options.Timeout) and are counted. A second call
// returns the same result.
func (r *Run) Stop() Result {
	r.cancel()
	return r.Wait()
}

// Wait waits for the run to end by itself (Duration, MaxRequests or the
// context) and returns the result.
func (r *Run) Wait() Result {
	<-r.done
	r.once.Do(func() {
		r.cancel()
		r.mu.Lock()
		defer r.mu.Unlock()
		res := r.result
		res.Elapsed = time.Since(r.started)
		lat := slices.Clone(r.lat)
		slices.Sort(lat)
		if n := len(lat); n > 0 {
			res.P50 = lat[n*50/100]
			res.P99 = lat[min(n-1, n*99/100)]
			res.Max = lat[n-1]
		}
		r.final = res
	})
	return r.final
}

// worker makes requests until the run ends.
func (r *Run) worker(ctx context.Context) {
	var c *conn
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	for ctx.Err() == nil {
		if r.opts.MaxRequests > 0 && r.issued.Add(1) > int64(r.opts.MaxRequests) {
			return
		}
		begin := time.Now()
		status, body, raced, err := r.request(&c)
		elapsed := time.Since(begin)
		if err == nil {
			err = r.check(status, body)
		}
		r.record(elapsed, body, raced, err)
		if r.opts.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(r.opts.Pause):
			}
		}
	}
}

// request makes one request, reusing *c in keep-alive mode. A race on a
// reused connection is retried once on a fresh one and reported.
func (r *Run) request(c **conn) (status int, body []byte, raced bool, err error) {
	for attempt := 0; ; attempt++ {
		if *c == nil {
			nc, err := r.dial()
			if err != nil {
				return 0, nil, raced, err
			}
			*c = nc
		}
		status, body, err = (*c).roundTrip(r.target, r.opts.Mode == KeepAlive, r.opts.Timeout)
		reused := (*c).served > 0
		if err == nil {
			(*c).served++
			if r.opts.Mode == NewConn || (*c).closing {
				(*c).close()
				*c = nil
			}
			return status, body, raced, nil
		}
		gotBytes := (*c).read > (*c).readBefore
		(*c).close()
		*c = nil
		if attempt == 0 && reused && !gotBytes && !isTimeout(err) {
			raced = true
			continue
		}
		return 0, nil, raced, err
	}
}

func (r *Run) dial() (*conn, error) {
	dial := r.opts.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	defer cancel()
	nc, err := dial(ctx, r.target.network, r.target.addr)
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc}
	c.br = bufio.NewReader(countingReader{c})
	return c, nil
}

// check applies Options.Expect, or the default 2xx check.
func (r *Run) check(status int, body []byte) error {
	if r.opts.Expect != nil {
		if err := r.opts.Expect(status, body); err != nil {
			return &checkError{err: err, status: status}
		}
		return nil
	}
	if status < 200 || status > 299 {
		return &checkError{err: fmt.Errorf("status %d", status), status: status}
	}
	return nil
}

func (r *Run) record(elapsed time.Duration, body []byte, raced bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &r.result
	res.Requests++
	if raced {
		res.Races++
	}
	if err != nil {
		r.failed.Add(1)
		res.Failed++
		kind := classify(err)
		res.Failures[kind]++
		if len(res.Samples) < maxSamples {
			res.Samples = append(res.Samples, kind+": "+err.Error())
		}
		return
	}
	r.ok.Add(1)
	res.OK++
	tag, _, _ := strings.Cut(string(body), "\n")
	res.Tags[tag]++
	r.lat = append(r.lat, elapsed)
}

// checkError is a response that arrived but was not the expected one.
type checkError struct {
	err    error
	status int
}

func (e *checkError) Error() string { return e.err.Error() }
func (e *checkError) Unwrap() error { return e.err }

// classify names the kind of a failure.
func classify(err error) string {
	var ce *checkError
	switch {
	case errors.As(err, &ce):
		if ce.status < 200 || ce.status > 299 {
			return FailStatus
		}
		return FailBody
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return FailRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return FailReset
	case isTimeout(err):
		return FailTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FailEOF
	}
	return FailOther
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// target is a parsed Options.Target.
type target struct {
	network, addr, host, path string
}

func parseTarget(s string) (target, error) {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		sock, path := rest, "/"
		if i := strings.LastIndex(rest, ":/"); i > 0 {
			sock, path = rest[:i], rest[i+1:]
		}
		if sock == "" {
			return target{}, fmt.Errorf("load: target %q: no socket path", s)
		}
		return target{network: "unix", addr: sock, host: "localhost", path: path}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("load: target %q: %w", s, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return target{}, fmt.Errorf("load: target %q: want http://HOST:PORT/PATH or unix:/SOCKET:/PATH", s)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	return target{network: "tcp", addr: host, host: u.Host, path: path}, nil
}

// conn is one client connection with a count of the bytes read from it, so
// a failure can tell whether any of the response had arrived.
type conn struct {
	net.Conn
	br         *bufio.Reader
	read       int64 // bytes read from the socket so far
	readBefore int64 // read when the current request was written
	served     int   // responses completed on this connection
	closing    bool  // the server said Connection: close
}

type countingReader struct{ c *conn }

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.c.Conn.Read(p)
	r.c.read += int64(n)
	return n, err
}

func (c *conn) close() { c.Conn.Close() }

// roundTrip writes one GET and reads the whole response.
func (c *conn) roundTrip(t target, keepAlive bool, timeout time.Duration) (int, []byte, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, nil, err
	}
	c.readBefore = c.read
	hdr := "keep-alive"
	if !keepAlive {
		hdr = "close"
	}
	req := "GET " + t.path + " HTTP/1.1\r\nHost: " + t.host + "\r\nUser-Agent: baton-load\r\nConnection: " + hdr + "\r\n\r\n"
	if _, err := io.WriteString(c.Conn, req); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	c.closing = resp.Close
	return resp.StatusCode, body, nil
}
