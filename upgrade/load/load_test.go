package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name, in            string
		network, addr, path string
		wantErr             bool
	}{
		{name: "http-port", in: "http://127.0.0.1:8080/health", network: "tcp", addr: "127.0.0.1:8080", path: "/health"},
		{name: "http-default-port", in: "http://127.0.0.1/", network: "tcp", addr: "127.0.0.1:80", path: "/"},
		{name: "http-ipv6", in: "http://[::1]:81/x?y=1", network: "tcp", addr: "[::1]:81", path: "/x?y=1"},
		{name: "unix-with-path", in: "unix:/run/a:b.sock:/health", network: "unix", addr: "/run/a:b.sock", path: "/health"},
		{name: "unix-no-path", in: "unix:/run/app.sock", network: "unix", addr: "/run/app.sock", path: "/"},
		{name: "unix-empty", in: "unix:", wantErr: true},
		{name: "https-refused", in: "https://127.0.0.1/", wantErr: true},
		{name: "no-host", in: "http:///x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTarget(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseTarget(%q) = %+v, want error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.network != tt.network || got.addr != tt.addr || got.path != tt.path {
				t.Fatalf("parseTarget(%q) = %+v", tt.in, got)
			}
		})
	}
}

func runFor(t *testing.T, opts Options, n int) Result {
	t.Helper()
	opts.MaxRequests = n
	r, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("load run did not finish")
	}
	return r.Wait()
}

func TestCountsAndTags(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gen=%d\nrest", n.Add(1)%2)
	}))
	defer srv.Close()
	for _, mode := range []Mode{KeepAlive, NewConn} {
		t.Run(mode.String(), func(t *testing.T) {
			res := runFor(t, Options{Target: srv.URL + "/", Concurrency: 3, Mode: mode}, 200)
			if res.Requests != 200 || res.OK != 200 || res.Failed != 0 {
				t.Fatalf("got %s", res)
			}
			if res.Tags["gen=0"]+res.Tags["gen=1"] != 200 || len(res.Tags) != 2 {
				t.Fatalf("tags %v", res.Tags)
			}
			if res.Max < res.P99 || res.P99 < res.P50 || res.P50 <= 0 {
				t.Fatalf("percentiles out of order: %s", res)
			}
		})
	}
}

func TestExpectFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "wrong body")
	}))
	defer srv.Close()
	res := runFor(t, Options{Target: srv.URL + "/bad", Concurrency: 2}, 20)
	if res.Failed != 20 || res.Failures[FailStatus] != 20 {
		t.Fatalf("500s: %s %v", res, res.Failures)
	}
	expect := func(status int, body []byte) error {
		if !strings.HasPrefix(string(body), "version=") {
			return errors.New("body does not name a version")
		}
		return nil
	}
	res = runFor(t, Options{Target: srv.URL + "/", Concurrency: 2, Expect: expect}, 20)
	if res.Failed != 20 || res.Failures[FailBody] != 20 || len(res.Samples) != maxSamples {
		t.Fatalf("bodies: %s %v", res, res.Failures)
	}
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := runFor(t, Options{Target: "http://" + addr + "/", Concurrency: 1, Mode: NewConn}, 5)
	if res.Failed != 5 || res.Failures[FailRefused] != 5 {
		t.Fatalf("got %s %v", res, res.Failures)
	}
}

// TestKeepAliveRace: a server that closes every connection after one
// response without saying so makes each reuse a race, which is retried on a
// new connection and counted apart from failures.
func TestKeepAliveRace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
			}()
		}
	}()
	res := runFor(t, Options{Target: "http://" + ln.Addr().String() + "/", Concurrency: 1, Mode: KeepAlive}, 10)
	if res.Failed != 0 || res.OK != 10 {
		t.Fatalf("got %s %v %v", res, res.Failures, res.Samples)
	}
	if res.Races != 9 {
		t.Fatalf("races = %d, want 9 (every reuse after the first request): %s", res.Races, res)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s\n", r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	res := runFor(t, Options{Target: "unix:" + sock + ":/health", Concurrency: 2}, 10)
	if res.OK != 10 || res.Tags["path=/health"] != 10 {
		t.Fatalf("got %s %v", res, res.Tags)
	}
}

func TestStopAndDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	r, err := Start(context.Background(), Options{Target: srv.URL, Pause: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first := r.Stop()
	if again := r.Stop(); again.Requests != first.Requests {
		t.Fatalf("second Stop returned %d requests, first %d", again.Requests, first.Requests)
	}
	r, err = Start(context.Background(), Options{Target: srv.URL, Duration: 50 * time.Millisecond, Pause: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("Duration did not end the run")
	}
	if res := r.Wait(); res.Failed != 0 || res.Requests == 0 {
		t.Fatalf("got %s", res)
	}
}

// TestSnapshot: a snapshot taken once the run is done counts what the final
// result counts, races and failures included, and is a copy.
func TestSnapshot(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "gen=1\n")
	}))
	defer srv.Close()
	r, err := Start(context.Background(), Options{Target: srv.URL + "/", Concurrency: 1, MaxRequests: 20})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("load run did not finish")
	}
	snap := r.Snapshot()
	snap.Tags["gen=1"] = -1
	snap.Failures[FailStatus] = -1
	final := r.Wait()
	if final.Requests != 20 || final.OK != 15 || final.Failed != 5 {
		t.Fatalf("final %s", final)
	}
	if snap.Requests != final.Requests || snap.OK != final.OK || snap.Failed != final.Failed || snap.Races != final.Races {
		t.Fatalf("snapshot %s, final %s", snap, final)
	}
	if final.Tags["gen=1"] != 15 || final.Failures[FailStatus] != 5 {
		t.Fatalf("changing the snapshot changed the run: tags %v failures %v", final.Tags, final.Failures)
	}
}

// TestDial: Options.Dial opens every connection, with the target's network
// and address and a context that ends at Timeout; its error is a failure.
func TestDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var dials atomic.Int64
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		if network != "tcp" || a != addr {
			return nil, fmt.Errorf("dial %s %s, want tcp %s", network, a, addr)
		}
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("dial context has no deadline")
		}
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}
	res := runFor(t, Options{Target: srv.URL + "/", Concurrency: 2, Mode: NewConn, Dial: dial}, 10)
	if res.OK != 10 || res.Failed != 0 || dials.Load() != 10 {
		t.Fatalf("got %s %v, %d dials; want 10 ok, 10 dials", res, res.Samples, dials.Load())
	}
	refuse := func(context.Context, string, string) (net.Conn, error) {
		return nil, syscall.ECONNREFUSED
	}
	res = runFor(t, Options{Target: srv.URL + "/", Concurrency: 1, Dial: refuse}, 3)
	if res.Failed != 3 || res.Failures[FailRefused] != 3 {
		t.Fatalf("got %s %v; want 3 refused", res, res.Failures)
	}
}
