// Package integration holds baton's black-box end-to-end tests: they build the
// baton binary once and drive it against real servers nobody here wrote —
// Debian's nginx, unicorn and gunicorn — and against baton's own master
// (`baton run` with the hidden `baton demo-app`), each under concurrent client
// load, asserting that no request fails.
//
// The package has no non-test code; this file only documents it.
//
// # Running
//
//	go test ./integration/                        # peers missing here are skipped with a reason
//	BATON_REQUIRE_PEERS=1 go test ./integration/  # CI: a missing peer fails the run
//	go test -short ./integration/                 # fewer upgrade cycles
//	go test -run 'TestUpgrade/nginx' -v ./integration/
//	go test -v -run Soak -timeout 90m ./integration/ -soak  # TestSoak, only with -soak (BENCHMARKS.md)
//
// # Harness
//
// TestMain builds cmd/baton once with `go build` into a temporary directory
// ([batonBin]), as README.md's release build (CGO_ENABLED=0, -tags
// urfave_cli_no_docs), and makes the test process a child subreaper
// (PR_SET_CHILD_SUBREAPER), so every process a test starts stays in its
// process tree even after it daemonizes or its parent master exits (nginx,
// unicorn and gunicorn daemonize; a new master outlives the old one).
// Orphans that exit are reaped by the harness, as promptly as init would.
// Each test owns the processes it started, the masters it read from pid files
// and their sessions, process groups and descendants; t.Cleanup SIGKILLs them all by
// pid, even when the test fails, and TestMain fails the run if any process
// started by the tests is still alive at the end. If the test binary itself
// dies without cleaning up (a -timeout panic runs no t.Cleanup), a watchdog
// helper it started kills what it had started.
//
// A peer ([peer]) is one running server with its own directory: a pid file,
// a TCP listener on a free loopback port, a unix socket listener, a release
// directory (`current`, a symlink) from which the next generation takes its
// version, and logs that are printed when the test fails. Every response body
// starts with "<flavor> version=<V>" or, for baton's demo app,
// "version=<V> generation=<G>", so the load generator's tally shows which
// generation served each request.
//
// # systemd
//
// The TestSystemd* tests (systemd_*_test.go) run the units of
// scripts/systemd under a real systemd: bootSystemd (systemd_harness_test.go)
// boots it as PID 1 of private pid, mount, network, UTS, IPC and cgroup
// namespaces, on a read-only view of the host's tree with private tmpfs on
// /run, /tmp, /var/tmp, /var/log, /srv, /usr/local/bin (the freshly built
// baton) and overlays on /etc and /usr/sbin, into a target of its own with
// every unit the host's targets pull in masked (systemd-tmpfiles-* among
// them: on a shared /tmp their boot would empty the host's). Tests write
// files through /proc/PID/root, run systemctl, journalctl and baton with
// nsenter, and put load on the units from inside the namespace's network
// namespace (load.Options.Dial). At the end PID 1 is SIGKILLed by its pid,
// which ends the namespace, and its cgroup is removed. Without root, cgroup
// v2 or the tools (unshare, nsenter, setpriv, mount) they skip with the
// reason, or fail with BATON_REQUIRE_PEERS=1.
//
// # Time
//
// `go test ./...` gives each test binary 10 minutes (go test's default
// -timeout; the go command kills the binary a minute later), and this
// package is the longest: on a two-core machine its tests add up to more
// than that, one after another. The flavour scenarios run their four peers
// as parallel subtests; the long self-contained tests (the fleet rollout,
// the init script, the orchestrator-killed matrix, the longer systemd
// tests, the Ansible collection) are parallel top-level tests, run together
// (-parallel, GOMAXPROCS at a time) once the sequential ones are done. Each
// test makes its own ports, directories and namespaces, so none waits for
// another; a test that must run alone (t.Setenv) stays sequential. A test's
// context (testContext) ends a little before the binary's deadline, so a
// run short of time fails with the test that was cut, not a panic.
//
// # Writing a test
//
//	func TestSomething(t *testing.T) {
//		p := startPeer(t, flavorNginx, peerOptions{}) // skips or fails if nginx is missing
//		ctx := testContext(t)
//		l := startLoad(ctx, t, p)
//		p.release(t, "v2")                            // deploy: releases/v2, current -> v2
//		p.upgrade(ctx, t, "start", "--commit").wantCode(t, 0)
//		assertNoFailures(t, l.stop(t)...)             // logs each run's load.Result
//		p.wantServing(ctx, t, "v2")
//	}
//
// Other helpers: batonCmd and batonStart run the built binary (exit code,
// stdout, stderr; in the background, with kill and waitStderr);
// startPeer/startNginx/startUnicorn/startGunicorn/startBaton; the peer's
// masterPID, workersOf, wantParked, wantPidfiles, wantSocket, wantUntouched,
// wantRolledBack, replaceBinary, breakBinary, breakConfig, setFail;
// runScenarios and forEachFlavor run a body against every flavor under load;
// ownerOf(t).adopt(pid) makes a process the test's, to be killed at its end.
//
// Tests never sleep for readiness: they poll an observable condition (a pid
// file, a process, an HTTP answer) with a bounded wait ([waitFor]).
package integration
