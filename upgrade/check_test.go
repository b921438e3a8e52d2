package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseCheck(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		kind       CheckKind
		addr, url  string
		bad        string // substring of the error
	}{
		{name: "http", spec: "http://127.0.0.1:8080/health", kind: CheckHTTP, url: "http://127.0.0.1:8080/health"},
		{name: "https", spec: "https://[::1]:8443/", kind: CheckHTTP, url: "https://[::1]:8443/"},
		{name: "http-no-host", spec: "http:///health", bad: "no host"},
		{name: "http-bad-port", spec: "http://127.0.0.1:99999/", bad: "out of range"},
		{name: "unix", spec: "unix:/run/app.sock:/health?full=1", kind: CheckUnix, addr: "/run/app.sock", url: "/health?full=1"},
		{name: "unix-no-path", spec: "unix:/run/app.sock", kind: CheckUnix, addr: "/run/app.sock", url: "/"},
		{name: "unix-abstract", spec: "unix:@app:/health", kind: CheckUnix, addr: "@app", url: "/health"},
		{name: "unix-relative", spec: "unix:app.sock:/health", bad: "want unix:/path.sock"},
		{name: "unix-too-long", spec: "unix:/" + strings.Repeat("a", 120), bad: "longer than 107"},
		{name: "tcp", spec: "tcp://127.0.0.1:8080", kind: CheckTCP, addr: "127.0.0.1:8080"},
		{name: "tcp-v6", spec: "tcp://[::1]:8080", kind: CheckTCP, addr: "[::1]:8080"},
		{name: "tcp-no-port", spec: "tcp://127.0.0.1", bad: "missing port"},
		{name: "tcp-port-zero", spec: "tcp://127.0.0.1:0", bad: "out of range"},
		{name: "tcp-no-host", spec: "tcp://:80", bad: "no host"},
		{name: "exec", spec: "exec: curl -fsS http://x/ ", kind: CheckExec},
		{name: "exec-empty", spec: "exec:  ", bad: "empty command"},
		{name: "unknown-scheme", spec: "ftp://x", bad: "want http://"},
		{name: "empty", spec: "", bad: "want http://"},
		{name: "newline", spec: "http://a/\n", bad: "control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCheck(tc.spec)
			if tc.bad != "" {
				if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("ParseCheck(%q) = %+v, %v; want an error saying %q", tc.spec, c, err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind != tc.kind || tc.addr != "" && c.Addr != tc.addr || tc.url != "" && c.URL != tc.url {
				t.Errorf("ParseCheck(%q) = %+v", tc.spec, c)
			}
		})
	}
}

// FuzzParseCheck: never panics; a parsed check has a kind and its fields
// are consistent with it; the spec is kept verbatim.
func FuzzParseCheck(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8080/health", "https://h:1/", "unix:/a.sock:/p", "unix:/a:b.sock:/p", // a colon in the socket path
		"tcp://[::1]:80", "tcp://h:65536", "exec:true", "exec:", "http://%zz", "unix::/", "tcp://[::1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		c, err := ParseCheck(spec)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v does not wrap ErrBadInput", err)
			}
			return
		}
		if c.Spec != spec {
			t.Fatalf("spec %q kept as %q", spec, c.Spec)
		}
		switch c.Kind {
		case CheckHTTP:
			if c.URL == "" {
				t.Fatal("http without URL")
			}
		case CheckUnix:
			if c.Addr == "" || !strings.HasPrefix(c.URL, "/") {
				t.Fatalf("unix check %+v", c)
			}
		case CheckTCP:
			if _, _, err := net.SplitHostPort(c.Addr); err != nil {
				t.Fatalf("tcp addr %q: %v", c.Addr, err)
			}
		case CheckExec:
			if strings.TrimSpace(c.Cmd) == "" {
				t.Fatal("empty exec")
			}
		default:
			t.Fatalf("kind %d", c.Kind)
		}
	})
}

func TestCheckRun(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/bad", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()

	sock := filepath.Join(t.TempDir(), "app.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	usrv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	go usrv.Serve(uln)
	defer usrv.Close()

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		name, spec string
		insecure   bool
		fail       string
	}{
		{name: "http-200", spec: srv.URL + "/ok"},
		{name: "http-503", spec: srv.URL + "/bad", fail: "status 503: down for maintenance"},
		{name: "http-redirect-is-not-2xx", spec: srv.URL + "/redirect", fail: "status 302"},
		{name: "http-refused", spec: "http://" + closedAddr + "/", fail: "refused"},
		{name: "https-unverified-cert", spec: tlsSrv.URL + "/ok", fail: "certificate"},
		{name: "https-insecure-option", spec: tlsSrv.URL + "/ok", insecure: true},
		{name: "unix-200", spec: "unix:" + sock + ":/ok"},
		{name: "unix-503", spec: "unix:" + sock + ":/bad", fail: "503"},
		{name: "unix-missing", spec: "unix:" + sock + ".nope:/ok", fail: "no such file"},
		{name: "tcp-open", spec: "tcp://" + addr},
		{name: "tcp-refused", spec: "tcp://" + closedAddr, fail: "refused"},
		{name: "exec-true", spec: "exec:true"},
		{name: "exec-false", spec: "exec:echo broken config >&2; exit 3", fail: "broken config"},
		{name: "slow-bounded-by-ctx", spec: srv.URL + "/slow", fail: "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCheck(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			c.InsecureTLS = tc.insecure
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = c.Run(ctx)
			if tc.fail == "" {
				if err != nil {
					t.Fatalf("%s: %v", tc.spec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Fatalf("%s: %v, want an error saying %q", tc.spec, err, tc.fail)
			}
		})
	}
}
