package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/upgrade/load"
)

// TestPumaStopRaces: puma 5.6's graceful stop (TERM, what baton sends each
// old worker on an upgrade) races the keep-alive requests it is finishing,
// three ways, and each answers one client with a bare 500 (or resets a
// connection another thread is answering on). TestPumaFullLoad met the
// first once in CI: "Read: #<IOError: stream closed in another thread>".
// Each needs a thread held at one point while the server thread passes
// another, too rare for load alone (40 upgrades at TestPumaFullLoad's load
// met none), so pumaStopRaces, appended to the recipe, holds a thread at
// each point on every stop until the server thread has passed the step it
// races with. With the recipe's patches every request is answered; without
// them every stop loses requests (2 upgrades: four 500s, four resets, and
// puma's "Read:" errors), and without any one of them the test fails.
func TestPumaStopRaces(t *testing.T) {
	ctx := testContext(t)
	p := startPuma(ctx, t, pumaStopRaces)
	tr := &traffic{name: "puma"}
	t.Cleanup(func() {
		if !tr.done {
			tr.stop(t)
		}
	})
	// 32 unpaced keep-alive clients keep the 2×4 threads busy, which the
	// listener check needs, and requests going back to the reactor.
	r, err := load.Start(ctx, load.Options{Target: "http://" + p.addr + "/", Mode: load.KeepAlive,
		Concurrency: 32, Timeout: 20 * time.Second, Expect: expectGeneration})
	if err != nil {
		t.Fatal(err)
	}
	tr.runs = append(tr.runs, r)
	const cycles = 2
	for range cycles {
		tr.progress(ctx, t, 200)
		batonCmd(ctx, t, "upgrade", "start", "--pidfile", p.pidfile, "--commit", "--verify-for", "0",
			"--check", "http://"+p.addr+"/", "--spawn-timeout", "60s").wantCode(t, 0)
	}
	tr.progress(ctx, t, 200)
	results := tr.stop(t)
	assertNoFailures(t, results...)
	// The test proves something only if the races were run: each old worker
	// holds each at most once, and at least one per upgrade must have.
	out, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, race := range []string{"listener", "requeue", "wakeup"} {
		if n := strings.Count(string(out), "baton-test-hold "+race+"\n"); n < cycles {
			t.Errorf("race %q held %d times in %d upgrades, want at least %d", race, n, cycles, cycles)
		}
	}
	// Server#client_error logs what it answers 500 for as "Read: #<...>",
	// also when the connection it writes to is already closed (race 3
	// mostly is: the reactor has answered or closed it).
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, " Read: #<") {
			t.Errorf("puma answered a request with an error: %s", line)
		}
	}
}

// pumaStopRaces is Ruby appended to the recipe's puma.rb: fault injection
// for TestPumaStopRaces.
const pumaStopRaces = `
# TestPumaStopRaces (integration/puma_stop_test.go): fault injection.
# When the worker stops, hold one pool thread at each racy point of puma
# 5.6's graceful stop until the server thread has passed the step it races
# with, and make the stop wait (at most 2 s per step) until they are held.
# Each hold is an interleaving the scheduler can produce (a thread
# preempted, or queued for the GVL, at that point), made certain. Races
# 1-3 are those of the patches in puma.rb.
require 'nio'
stop_races = { armed: {}, held: {}, lock: Mutex.new }
stop_races[:now] = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
# Only threads of the pool ("puma srv tp 001"), once per kind and process.
stop_races[:claim] = lambda do |kind|
  next false unless stop_races[:armed][kind] && Thread.current.name.to_s.include?(' tp ')

  stop_races[:lock].synchronize do
    next false if stop_races[:held][kind]

    stop_races[:held][kind] = true
    $stderr.puts "baton-test-hold #{kind}"
    true
  end
end
stop_races[:arm] = lambda do |*kinds|
  kinds.each { |k| stop_races[:armed][k] = true }
  deadline = stop_races[:now].call + 2
  sleep 0.002 until kinds.all? { |k| stop_races[:held][k] } || stop_races[:now].call > deadline
end
stop_races[:until] = lambda do |event, &slice|
  deadline = stop_races[:now].call + 6
  until stop_races[event] || stop_races[:now].call > deadline
    slice ? slice.call : sleep(0.002)
  end
end
Puma::Server.prepend(Module.new do
  # TERM, in the main thread: race 1's check only runs after 10 requests
  # inline, so it is caught while puma still serves as usual.
  define_method(:stop) do |*args|
    stop_races[:arm].call(:listener)
    super(*args)
  end

  # The server thread has read STOP and is about to clear @queue_requests
  # and stop the reactor.
  define_method(:handle_check) do
    stopping = super()
    stop_races[:arm].call(:requeue, :wakeup) if stopping && @status == :stop
    stopping
  end
end)
Puma::Reactor.prepend(Module.new do
  define_method(:shutdown) do
    super()
  ensure
    stop_races[:reactor_stopped] = true
  end
end)
Puma::Binder.prepend(Module.new do
  define_method(:close) do
    super()
  ensure
    stop_races[:listeners_closed] = true
  end
end)
# Race 1: the check of the listener in str_headers (request.rb:441-443),
# held in waits on the listener's descriptor, as wait_readable(0) is, until
# Server#graceful_shutdown has called Binder#close (server.rb:569). A
# listening socket is never writable: each wait_writable is a 2 ms wait.
TCPServer.prepend(Module.new do
  define_method(:wait_readable) do |*args|
    if args == [0] && stop_races[:claim].call(:listener)
      stop_races[:until].call(:listeners_closed) { wait_writable(0.002) }
    end
    super(*args)
  end
end)
# Race 2: a keep-alive connection going back to the reactor, held between
# the check of @queue_requests and Reactor#add (server.rb:470-472) until
# the reactor has stopped.
Puma::Client.prepend(Module.new do
  define_method(:set_timeout) do |val|
    if @requests_served.positive? && stop_races[:claim].call(:requeue)
      stop_races[:until].call(:reactor_stopped)
    end
    super(val)
  end
end)
# Race 3: Reactor#add between queueing the client and waking the selector
# (reactor.rb:50-51), held until the reactor has stopped.
NIO::Selector.prepend(Module.new do
  define_method(:wakeup) do
    stop_races[:until].call(:reactor_stopped) if stop_races[:claim].call(:wakeup)
    super()
  end
end)
`
