package upgrade

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CheckKind is the kind of a health check.
type CheckKind uint8

const (
	CheckHTTP CheckKind = iota + 1 // http:// or https://: expects a 2xx answer
	CheckUnix                      // unix:/path.sock:/path: HTTP over a unix socket
	CheckTCP                       // tcp://host:port: a connection is accepted
	CheckExec                      // exec:CMD: sh -c CMD exits 0 (see runCommand)
)

// Check is one parsed health check. The zero value is not a check; use
// ParseCheck. Run may be called concurrently.
type Check struct {
	Spec string
	Kind CheckKind
	URL  string // CheckHTTP: the URL; CheckUnix: the http path
	Addr string // CheckTCP: host:port; CheckUnix: socket path
	Cmd  string // CheckExec
	// InsecureTLS skips certificate verification for https; off unless the
	// operator asked for it.
	InsecureTLS bool
	// Timeout bounds one run; zero means DefaultCheckTimeout.
	Timeout time.Duration
}

// DefaultCheckTimeout bounds one run of a check (or the context's deadline
// when earlier).
const DefaultCheckTimeout = 5 * time.Second

// ParseCheck parses a check spec (see the package doc). Errors wrap
// ErrBadInput.
func ParseCheck(spec string) (Check, error) {
	bad := func(format string, args ...any) (Check, error) {
		return Check{}, fmt.Errorf("%w: check %q: %s", ErrBadInput, spec, fmt.Sprintf(format, args...))
	}
	if strings.ContainsAny(spec, "\x00\n\r") && !strings.HasPrefix(spec, "exec:") {
		return bad("control characters")
	}
	c := Check{Spec: spec}
	switch {
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		u, err := url.Parse(spec)
		if err != nil {
			return bad("%v", err)
		}
		if u.Host == "" {
			return bad("no host")
		}
		if u.Port() != "" {
			if _, err := parsePort(u.Port()); err != nil {
				return bad("%v", err)
			}
		}
		c.Kind, c.URL = CheckHTTP, u.String()
	case strings.HasPrefix(spec, "unix:"):
		rest := strings.TrimPrefix(spec, "unix:")
		sock, path := rest, "/"
		if i := strings.LastIndex(rest, ":/"); i > 0 {
			sock, path = rest[:i], rest[i+1:]
		}
		if !strings.HasPrefix(sock, "/") && !strings.HasPrefix(sock, "@") {
			return bad("want unix:/path.sock or unix:/path.sock:/http-path")
		}
		if len(sock) > 107 {
			return bad("socket path longer than 107 bytes")
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return bad("http path: %v", err)
		}
		c.Kind, c.Addr, c.URL = CheckUnix, sock, u.RequestURI()
	case strings.HasPrefix(spec, "tcp://"):
		hostport := strings.TrimPrefix(spec, "tcp://")
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return bad("%v", err)
		}
		if host == "" {
			return bad("no host")
		}
		if _, err := parsePort(port); err != nil {
			return bad("%v", err)
		}
		c.Kind, c.Addr = CheckTCP, net.JoinHostPort(host, port)
	case strings.HasPrefix(spec, "exec:"):
		cmd := strings.TrimSpace(strings.TrimPrefix(spec, "exec:"))
		if cmd == "" {
			return bad("empty command")
		}
		c.Kind, c.Cmd = CheckExec, cmd
	default:
		return bad("want http://, https://, unix:/path.sock:/path, tcp://host:port or exec:CMD")
	}
	return c, nil
}

func parsePort(s string) (int, error) {
	n := 0
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("bad port %q", s)
		}
		n = n*10 + int(r-'0')
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q out of range", s)
	}
	return n, nil
}

func (c Check) String() string { return c.Spec }

// Run runs the check once. It returns nil on success and an error saying
// what was wrong otherwise.
func (c Check) Run(ctx context.Context) error {
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	return nil
}

// run is Run without the package prefix, for errors that stay inside the
// package and leave it wrapped in one of its sentinels.
func (c Check) run(ctx context.Context) error {
	// Every run is bounded on its own, whatever the caller's deadline: a
	// connection that an accept queue holds and no process serves would
	// otherwise hang the whole procedure.
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	switch c.Kind {
	case CheckHTTP:
		err = c.runHTTP(ctx, nil, c.URL)
	case CheckUnix:
		dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Addr)
		}
		err = c.runHTTP(ctx, dial, "http://unix"+c.URL)
	case CheckTCP:
		var d net.Dialer
		var conn net.Conn
		conn, err = d.DialContext(ctx, "tcp", c.Addr)
		if err == nil {
			conn.Close()
		}
	case CheckExec:
		var out []byte
		if out, err = runCommand(ctx, c.Cmd, CommandGrace); err != nil {
			msg := strings.TrimSpace(string(out))
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			if msg != "" {
				err = fmt.Errorf("%w: %s", err, msg)
			}
		}
	default:
		err = errors.New("not a parsed check")
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", c.Spec, err)
	}
	return nil
}

func (c Check) runHTTP(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), target string) error {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext:       dial,
		Proxy:             nil, // health checks never go through a proxy
	}
	if c.InsecureTLS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // explicit operator option
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "baton-upgrade-check")
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// RunChecks runs every check once, in order, and returns the first failure.
func RunChecks(ctx context.Context, checks []Check) error {
	for _, c := range checks {
		if err := c.Run(ctx); err != nil {
			return err
		}
	}
	return nil
}
