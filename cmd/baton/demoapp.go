package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"
)

// demoAppCommand is the small HTTP app that `baton demo`, the integration
// tests and the benchmarks run under `baton run`. It is hidden: operators
// never need it, but it is a real server that takes its sockets the way any
// program under baton does.
func demoAppCommand() *cli.Command {
	return &cli.Command{
		Name:   "demo-app",
		Hidden: true,
		Usage:  "serve HTTP on inherited sockets, answering with version, generation and pid",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "version", Usage: "version to report", EnvVars: []string{"DEMO_VERSION"}, Value: "v1"},
			&cli.BoolFlag{Name: "fail", Usage: "answer /health with 500", EnvVars: []string{"DEMO_FAIL"}},
			&cli.StringFlag{Name: "listen", Usage: "address to bind when no socket is inherited"},
			&cli.DurationFlag{Name: "boot", Usage: "simulated boot time before accepting", EnvVars: []string{"DEMO_BOOT"}},
			&cli.DurationFlag{Name: "drain-timeout", Usage: "longest graceful drain", Value: 10 * time.Second},
		},
		Action: func(c *cli.Context) error {
			lns, err := demoListeners(c.String("listen"))
			if err != nil {
				return err
			}
			return serveDemo(c.Context, lns, demoConfig{
				version: c.String("version"),
				fail:    c.Bool("fail"),
				boot:    c.Duration("boot"),
				drain:   c.Duration("drain-timeout"),
			})
		},
	}
}

type demoConfig struct {
	version string
	fail    bool
	boot    time.Duration
	drain   time.Duration
}

// demoListeners takes the sockets the app was given: systemd-style
// LISTEN_FDS first, then Server::Starter's SERVER_STARTER_PORT, else it binds
// addr itself.
func demoListeners(addr string) ([]net.Listener, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("demo-app: LISTEN_FDS: %w", err)
	}
	lns = compactListeners(lns)
	if len(lns) > 0 {
		return lns, nil
	}
	if ports := os.Getenv("SERVER_STARTER_PORT"); ports != "" {
		for _, kv := range strings.Split(ports, ";") {
			_, fdText, ok := strings.Cut(kv, "=")
			fd, err := strconv.Atoi(fdText)
			if !ok || err != nil || fd < 3 {
				return nil, fmt.Errorf("demo-app: SERVER_STARTER_PORT: bad entry %q", kv)
			}
			f := os.NewFile(uintptr(fd), kv)
			ln, err := net.FileListener(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("demo-app: SERVER_STARTER_PORT %q: %w", kv, err)
			}
			lns = append(lns, ln)
		}
		return lns, nil
	}
	if addr == "" {
		return nil, errors.New("demo-app: no inherited socket (LISTEN_FDS, SERVER_STARTER_PORT) and no --listen")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo-app: %w", err)
	}
	return []net.Listener{ln}, nil
}

// compactListeners drops the nil entries activation.Listeners leaves for
// fds that are not sockets.
func compactListeners(lns []net.Listener) []net.Listener {
	out := lns[:0]
	for _, ln := range lns {
		if ln != nil {
			out = append(out, ln)
		}
	}
	return out
}

func serveDemo(ctx context.Context, lns []net.Listener, cfg demoConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("app", "demo", "pid", os.Getpid(), "version", cfg.version)
	if cfg.boot > 0 {
		time.Sleep(cfg.boot) // the simulated boot is the point: a slow app starting up
	}
	generation := os.Getenv("BATON_GENERATION")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "version=%s generation=%s pid=%d\n", cfg.version, generation, os.Getpid())
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if cfg.fail {
			http.Error(w, "version="+cfg.version+" unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "version=%s ok\n", cfg.version)
	})
	var conns demoConns
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: conns.track}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGINT)
	defer signal.Stop(sigs)

	errc := make(chan error, len(lns))
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("notify READY=1 failed", "err", err)
	}
	log.Info("serving", "listeners", len(lns), "generation", generation)

	select {
	case <-ctx.Done():
	case sig := <-sigs:
		log.Info("draining", "signal", sig)
	case err := <-errc:
		return fmt.Errorf("demo-app: serve: %w", err)
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.drain)
	defer cancel()
	// net/http drops, unanswered, a connection whose first request it reads
	// after Shutdown began (conn.serve checks shuttingDown() right after
	// readRequest): a client that connected just before the drain would see
	// EOF. So stop accepting and answer every connection already accepted
	// before calling Shutdown; without keep-alives each closes after its
	// answer, and Shutdown then only closes idle keep-alive connections.
	srv.SetKeepAlivesEnabled(false)
	for _, ln := range lns {
		ln.Close() // Serve returns; its error is not read any more
	}
	// Once every Serve has returned, a connection accept(2) gave it just as
	// its listener closed has been tracked too (Serve reports StateNew
	// before it accepts again).
	wg.Wait()
	if err := conns.waitQuiet(drainCtx); err != nil {
		log.Warn("connections still busy at the drain timeout", "err", err)
	}
	err := srv.Shutdown(drainCtx)
	if err != nil {
		return fmt.Errorf("demo-app: drain: %w", err)
	}
	return nil
}

// demoConns counts the server's connections that are new (accepted, request
// not read yet) or active (request being answered). Safe for concurrent use.
type demoConns struct {
	mu      sync.Mutex
	busy    map[net.Conn]bool
	changed chan struct{}
}

// track is the server's ConnState hook.
func (c *demoConns) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy == nil {
		c.busy = map[net.Conn]bool{}
		c.changed = make(chan struct{}, 1)
	}
	switch st {
	case http.StateNew, http.StateActive:
		c.busy[conn] = true
	default:
		delete(c.busy, conn)
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitQuiet waits until no connection is new or active, or ctx ends.
func (c *demoConns) waitQuiet(ctx context.Context) error {
	for {
		c.mu.Lock()
		n, changed := len(c.busy), c.changed
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo-app: %d connections busy: %w", n, ctx.Err())
		case <-changed:
		}
	}
}
