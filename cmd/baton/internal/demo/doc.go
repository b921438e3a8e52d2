// Package demo is `baton demo`: the whole product in half a minute, on
// loopback, in a temporary directory, with nothing but the baton binary.
//
// [Run] starts `baton run` with a few workers of baton's built-in demo app
// (`baton demo-app`, release v1) on a free loopback port, puts it under load
// (keep-alive and new-connection clients from upgrade/load, every answer
// checked), and then plays a script of orchestrator steps, each a row of one
// table (steps.go):
//
//	step                          release             baton exits   then
//	upgrade start → v2            v2                  0             new master serves, old one parked
//	upgrade commit                (unchanged)         0             v2 serves alone, no .oldbin
//	upgrade start → v3 (broken)   v3, /health 500     1             rolled back: v2 serves alone
//
// A release is what the file $DIR/demo.env says (DEMO_VERSION, DEMO_FAIL):
// the master re-reads it for every new generation, so each upgrade starts
// workers of the next release. Every step runs the same binary as a child
// process, shows its command and output, and is checked from outside: exit
// status, pid file and .oldbin, and which versions answer. A failed step
// ends the script.
//
// # Output
//
// The package prints nothing by itself and never exits: progress lines go to
// [Options.Progress] (with a live request counter when [Options.Live] says
// it is a terminal), and Run returns a [Report] and an error saying what
// went wrong. [Report.WriteText] renders the report for people; its JSON
// form is what `baton demo --json` prints.
//
// # Stopping everything
//
// Whatever happens, also when ctx is cancelled (Ctrl-C, a closed output),
// Run stops everything it started before it returns: QUIT to every master,
// then KILL to what is still there, and it removes its directory. The demo
// knows its processes by walking down the process tree ([procs.Children])
// from itself and from every process it saw before, because the tree
// changes under it: a committed upgrade's new master outlives its parent and
// is reparented to init. Each process found is pinned by its identity (pid
// plus start time, [procs.OpenIdentity]), so a pid the kernel recycled for
// another program is never signalled, and a stale pid file never names a
// process to signal: only tracked ones are.
//
// # Pitfalls
//
//   - The free port is found by binding port 0 and closing it; another
//     program may take it in between, so a master that exits before it is
//     ready is retried on a new port.
//   - The master runs in its own process group so that the terminal's
//     Ctrl-C reaches only the demo, which then stops the master in order;
//     Pdeathsig covers the demo being killed outright.
//   - Children get the caller's environment minus what would change them
//     behind the demo's back: BATON_* flag defaults, DEMO_* app settings, a
//     service manager's LISTEN_* and NOTIFY_SOCKET.
package demo
