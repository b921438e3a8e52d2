package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
)

// pumaConfigRU answers with the generation of the baton master that
// started the worker, one tag per generation in the load's counts.
const pumaConfigRU = `run lambda { |env| [200, {"Content-Type" => "text/plain"}, ["gen=#{ENV["BATON_GENERATION"]}\n"]] }
`

// expectGeneration accepts an answer of pumaConfigRU.
func expectGeneration(status int, body []byte) error {
	if status != http.StatusOK || !strings.HasPrefix(string(body), "gen=") {
		return fmt.Errorf("status %d body %q", status, body)
	}
	return nil
}

// pumaRecipe is the documented way to run puma under baton (README, "puma
// under baton"): the shipped scripts/puma/puma.rb (single mode, the
// activated sockets only, READY=1 from puma's on_booted) with --ready notify,
// --defer-accept and --boot-nice.
func pumaRecipe(pidfile, addr, dir string) []string {
	return []string{"run", "--pidfile", pidfile, "--listen", addr, "--workers", "2",
		"--ready", "notify", "--defer-accept", "30s", "--boot-nice", "10", "--dir", dir, "--stop-timeout", "10s",
		"--", "/usr/bin/puma", "-C", filepath.Join(dir, "puma.rb"), "config.ru"}
}

// pumaRun is the recipe running under baton run.
type pumaRun struct {
	pidfile, addr string
	log           string // the output of baton run and its puma workers
}

// startPuma runs the recipe, with extra appended to puma.rb, and returns
// once puma answers.
func startPuma(ctx context.Context, t *testing.T, extra string) pumaRun {
	t.Helper()
	requirePeer(t, "/usr/bin/puma")
	o := ownerOf(t)
	dir := t.TempDir()
	recipe, err := os.ReadFile(filepath.Join("..", "scripts", "puma", "puma.rb"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "puma.rb"), string(recipe)+extra, 0o644)
	writeFile(t, filepath.Join(dir, "config.ru"), pumaConfigRU, 0o644)
	p := pumaRun{pidfile: filepath.Join(dir, "puma.pid"), log: filepath.Join(dir, "baton.log")}
	// Adopt the masters the pid files name, so the owner's kill at the end
	// takes each with its workers.
	t.Cleanup(func() {
		for _, f := range []string{p.pidfile, p.pidfile + ".oldbin"} {
			if pid, err := readPid(f); err == nil {
				o.adopt(pid)
			}
		}
	})
	p.addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(batonBin, pumaRecipe(p.pidfile, p.addr, dir)...)
	cmd.Env = append(os.Environ(), o.marker)
	log, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("baton run and puma:\n%s", indent(string(out)))
		}
	})
	cmd.Stdout, cmd.Stderr = log, log
	if _, err := startManaged(cmd); err != nil {
		t.Fatalf("start baton run: %v", err)
	}
	o.adopt(cmd.Process.Pid)
	mustWait(ctx, t, 60*time.Second, "puma answering under baton", func() (bool, error) {
		_, err := benchGet(ctx, "http://"+p.addr+"/")
		return err == nil, err
	})
	return p
}

// TestPumaFullLoad: puma under baton as the README documents it, through
// upgrade cycles, with 64 unpaced clients opening a connection per request,
// 16 keep-alive clients, and before each upgrade 8 connections that send
// their request only once it has committed (a browser's preconnect).
// Without --defer-accept each cycle lost requests, and every preconnect:
// puma 5.6 (server.rb, reactor_wakeup) closes unanswered a connection it
// accepted whose request has not arrived when it is told to stop. With
// TCP_DEFER_ACCEPT the kernel hands a connection to accept(2) only with its
// request, so the old workers never hold an empty one; the preconnects are
// answered by the new generation.
func TestPumaFullLoad(t *testing.T) {
	ctx := testContext(t)
	p := startPuma(ctx, t, "")
	pidfile, addr := p.pidfile, p.addr
	tr := &traffic{name: "puma"}
	t.Cleanup(func() {
		if !tr.done {
			tr.stop(t)
		}
	})
	for _, o := range []load.Options{{Mode: load.NewConn, Concurrency: 64}, {Mode: load.KeepAlive, Concurrency: 16}} {
		o.Target, o.Timeout, o.Expect = "http://"+addr+"/", 20*time.Second, expectGeneration
		r, err := load.Start(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		tr.runs = append(tr.runs, r)
	}
	const cycles = 3
	for i := range cycles {
		tr.progress(ctx, t, 200)
		pre := preconnect(t, addr, 8)
		batonCmd(ctx, t, "upgrade", "start", "--pidfile", pidfile, "--commit", "--verify-for", "0",
			"--check", "http://"+addr+"/", "--spawn-timeout", "60s").wantCode(t, 0)
		want := fmt.Sprintf("gen=%d", i+2)
		for j, c := range pre {
			if got, err := requestOn(c); err != nil || got != want {
				t.Errorf("cycle %d: preconnect %d: answer %q, %v; want %q", i+1, j, got, err, want)
			}
		}
	}
	tr.progress(ctx, t, 200)
	for _, res := range tr.stop(t) {
		t.Logf("generations: %v", res.Tags)
		if res.Failed != 0 {
			t.Errorf("%s: %d of %d requests failed: %v %q", res.Mode, res.Failed, res.Requests, res.Failures, res.Samples)
		}
		if got := len(res.Tags); got != cycles+1 {
			t.Errorf("%s: answers from %d generations %v, want %d", res.Mode, got, res.Tags, cycles+1)
		}
	}
}

// preconnect opens n connections to addr that send nothing yet.
func preconnect(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var out []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// requestOn sends one GET on c and returns the first line of the body.
func requestOn(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(body)), nil
}
