//go:build linux

package master_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// Servers nobody here wrote run unchanged under the master and upgrade with
// zero failed requests: Debian's puma through systemd socket activation
// (LISTEN_FDS/LISTEN_PID), and Starlet through Server::Starter's
// SERVER_STARTER_PORT.

const configRU = `run lambda { |env| [200, {"Content-Type" => "text/plain"}, ["gen=#{ENV["BATON_GENERATION"]} pid=#{Process.pid}\n"]] }
`

const appPSGI = `sub { [200, ["Content-Type" => "text/plain"], ["gen=$ENV{BATON_GENERATION} pid=$$\n"]] };
`

// needPeer skips when a peer program is missing, unless BATON_REQUIRE_PEERS=1.
func needPeer(t *testing.T, name string, check ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil && len(check) > 0 {
		err = exec.Command(check[0], check[1:]...).Run()
	}
	if err != nil {
		if os.Getenv("BATON_REQUIRE_PEERS") == "1" {
			t.Fatalf("%s is required (BATON_REQUIRE_PEERS=1): %v", name, err)
		}
		t.Skipf("skipping: %s is not usable here (%v); set BATON_REQUIRE_PEERS=1 to make this a failure", name, err)
	}
	return path
}

func TestPeers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string) []string // returns the command
		ready   string
		workers int
		// deferAccept: puma closes unanswered a connection it accepted
		// whose request has not arrived when it is told to stop (README,
		// "puma under baton"), so its recipe sets --defer-accept.
		deferAccept time.Duration
	}{
		{
			name: "puma-socket-activation",
			setup: func(t *testing.T, dir string) []string {
				puma := needPeer(t, "puma")
				writeFile(t, filepath.Join(dir, "config.ru"), configRU)
				// The shipped recipe (README, "puma under baton"): single
				// mode, only the activated sockets, READY=1 once booted,
				// and the patches of puma 5.6's graceful-stop races, which
				// answer a keep-alive request with a bare 500.
				recipe, err := os.ReadFile(filepath.Join("..", "..", "scripts", "puma", "puma.rb"))
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "puma.rb"), string(recipe))
				return []string{puma, "-C", filepath.Join(dir, "puma.rb"), "config.ru"}
			},
			ready:       "notify",
			workers:     2,
			deferAccept: 30 * time.Second,
		},
		{
			name: "starlet-server-starter",
			setup: func(t *testing.T, dir string) []string {
				plackup := needPeer(t, "plackup", "perl", "-MPlack::Handler::Starlet", "-MServer::Starter", "-e1")
				writeFile(t, filepath.Join(dir, "app.psgi"), appPSGI)
				return []string{plackup, "-s", "Starlet", "--max-workers", "2", "-E", "deployment", "app.psgi"}
			},
			ready:   "delay:1s",
			workers: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testOpts{Workers: tc.workers}, "")
			h.opts.Command = tc.setup(t, h.dir)
			h.opts.Dir = h.dir
			h.opts.Ready = tc.ready
			h.opts.DeferAccept = tc.deferAccept
			h.start()
			old := h.pid
			st := h.waitReady(old)
			inode := st.Listeners[0].Inode
			h.waitFor("the peer answers", func() bool { return strings.HasPrefix(h.get(st, "/"), "gen=1 ") })
			lp := startLoad(t, h.ctx, target(st), expectGen)
			lp.progress(h, 20)

			h.signal(old, syscall.SIGUSR2)
			var nw int
			h.waitFor("new pid file", func() bool {
				nw = pidInFile(t, h.opts.PIDFile)
				return nw != 0 && nw != old
			})
			ns := h.waitReady(nw)
			if ns.Listeners[0].Inode != inode {
				t.Errorf("new master's socket %d, want %d", ns.Listeners[0].Inode, inode)
			}
			lp.progress(h, 20)
			h.signal(old, syscall.SIGWINCH)
			h.waitStatus(old, "old workers gone", func(s statusfile.Master) bool { return len(s.Workers) == 0 })
			lp.progress(h, 20)
			h.signal(old, syscall.SIGQUIT)
			h.waitGone(old)
			lp.progress(h, 20)
			rs := lp.stop()
			for _, r := range rs {
				t.Logf("%s", r)
				if r.Failed != 0 || r.OK == 0 {
					t.Errorf("%s: %d failed of %d: %v %v", r.Mode, r.Failed, r.Requests, r.Failures, r.Samples)
				}
			}
			if got, want := generationsSeen(rs), []string{"gen=1", "gen=2"}; !slices.Equal(got, want) {
				t.Errorf("answers came from %v, want %v", got, want)
			}
			h.signal(nw, syscall.SIGQUIT)
			h.waitGone(nw)
		})
	}
}
