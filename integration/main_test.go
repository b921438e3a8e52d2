package integration

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables of the harness.
const (
	// EnvRequirePeers, set to 1, makes a missing peer (nginx, unicorn,
	// gunicorn, puma, plackup) fail the test instead of skipping it.
	EnvRequirePeers = "BATON_REQUIRE_PEERS"
	// envHelper names the helper a re-executed test binary runs.
	envHelper = "BATONTEST_HELPER"
	// envOwner marks every process a test starts (best effort: ruby and
	// python masters overwrite their environment block with their title).
	envOwner = "BATONTEST_OWNER"
)

// batonBin is the baton binary TestMain built for this run.
var batonBin string

// runID tells this run's processes from any other's.
var runID = fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())

// helpers are the programs a re-executed test binary can be. Each returns
// the process's exit code.
var helpers = map[string]func(args []string) int{
	"witness":       helperWitness,
	"watchdog":      helperWatchdog,
	"socket-holder": helperSocketHolder,
	"fleet-load":    helperFleetLoad,
	"fleet-proxy":   helperFleetProxy,
	"log-worker":    helperLogWorker,
}

// usedHelpers are the helpers some test starts; TestMain fails a run that
// registers a helper no test uses (a dead helper is a test that was lost).
var usedHelpers = map[string]bool{
	"witness":       true, // TestFaultPidfile
	"watchdog":      true, // TestMain
	"socket-holder": true, // TestRollbackSweepSocketActivation
	"fleet-load":    true, // TestFleetRollout
	"fleet-proxy":   true, // TestFleetRollout (ssh's ProxyCommand)
	"log-worker":    true, // TestRunWorkerLogRotate
}

func TestMain(m *testing.M) {
	if name := os.Getenv(envHelper); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "integration: unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h(os.Args[1:]))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	for name := range helpers {
		if !usedHelpers[name] {
			fmt.Fprintf(os.Stderr, "integration: helper %q is registered but no test uses it\n", name)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "baton-itest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	batonBin = filepath.Join(dir, "baton")
	// The release build README.md recommends: static, without the CLI
	// library's documentation generator (BenchmarkCLIStart times it).
	build := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", batonBin, "github.com/batonhq/baton/cmd/baton")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build ./cmd/baton: %v\n", err)
		return 1
	}

	// Become a child subreaper: daemons (nginx, unicorn -D, gunicorn -D) and
	// new masters that outlive their parent are re-parented to this process
	// instead of init, so they stay in this process's tree, where the
	// harness finds and kills them; the reaper reaps them as init would.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "integration: PR_SET_CHILD_SUBREAPER: %v\n", err)
		return 1
	}
	stopReaper := startReaper()
	stopWatchdog, err := startWatchdog()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: watchdog: %v\n", err)
		return 1
	}

	code := m.Run()
	printFigures(os.Stdout, testing.Verbose())
	stopWatchdog()

	// Every test kills what it started in t.Cleanup; anything alive now is a
	// leak, and a leak fails the run.
	if left := sweepAll(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "integration: %d processes started by the tests were still alive at the end (killed now):\n", len(left))
		for _, p := range left {
			fmt.Fprintf(os.Stderr, "  pid %d ppid %d: %s\n", p.pid, p.ppid, p.cmdline)
		}
		code = 1
	}
	stopReaper()
	return code
}

// helperWitness is an unrelated long-running process for the pid-file
// faults: it records every signal it receives, one name per line, in the file
// named by its first argument, and closes stdout once it is ready (os/exec's
// cmdHang handshake). SIGKILL and SIGSTOP cannot be recorded; the test checks
// that it is still alive instead.
func helperWitness(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "witness: want one argument, the record file")
		return 2
	}
	rec, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "witness:", err)
		return 1
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT)
	os.Stdout.Close() // ready
	for sig := range sigs {
		fmt.Fprintln(rec, strings.ToUpper(sig.String()))
		rec.Sync()
	}
	return 0
}

// startWatchdog starts the watchdog helper: if this process dies without
// cleaning up (a -timeout panic, a SIGKILL), it kills what this process had
// started, which t.Cleanup never got to. stop tells it all is well and waits
// for it to exit.
func startWatchdog() (stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envHelper+"=watchdog")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Its own process group: a Ctrl-C to `go test` must not kill it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	waited, err := startManaged(cmd)
	if err != nil {
		return nil, err
	}
	return func() {
		io.WriteString(w, watchdogDone)
		w.Close()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
	}, nil
}

// watchedDescendants lists the processes below root for the watchdog,
// following /proc/PID/task/*/children (the cost of the test's own
// processes, not of the host's), except the sleepers of a scaling
// benchmark's farm (farmComm), which die with the test binary by
// themselves (PR_SET_PDEATHSIG) and number thousands. Where the children
// files are missing it falls back to a scan of all of /proc.
func watchedDescendants(root int) []proc {
	if _, err := os.Stat("/proc/" + strconv.Itoa(root) + "/task/" + strconv.Itoa(root) + "/children"); err != nil {
		return descendants(allProcs(), root)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
		for _, f := range files {
			data, _ := os.ReadFile(f)
			for _, field := range strings.Fields(string(data)) {
				kid, err := strconv.Atoi(field)
				if err != nil {
					continue
				}
				p, err := readProc(kid)
				if err != nil || strings.HasPrefix(p.cmdline, farmComm) {
					continue
				}
				out = append(out, p)
				queue = append(queue, kid)
			}
		}
	}
	return out
}

// watchdogDone is what the test binary writes to the watchdog when it
// cleaned up by itself.
const watchdogDone = "done\n"

// helperWatchdog watches its parent, the test binary: every 250ms it notes
// the parent's descendants (pid and start time); when its stdin reaches EOF
// without watchdogDone (the parent died), it SIGKILLs those still running
// with the same start time, and their descendants.
func helperWatchdog([]string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	parent, self := os.Getppid(), os.Getpid()
	known := map[int]uint64{}
	input := make(chan string, 1)
	go func() {
		data, _ := io.ReadAll(os.Stdin)
		input <- string(data)
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case data := <-input:
			if data == watchdogDone {
				return 0
			}
			killed := 0
			for round := 0; round < 20; round++ {
				table := allProcs()
				var targets []proc
				for pid, start := range known {
					if p, ok := table[pid]; ok && p.start == start && !p.zombie() {
						targets = append(targets, p)
						targets = append(targets, descendants(table, pid)...)
					}
				}
				if len(targets) == 0 {
					break
				}
				for _, p := range targets {
					if p.pid != self && !p.zombie() && syscall.Kill(p.pid, syscall.SIGKILL) == nil {
						killed++
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			fmt.Fprintf(os.Stderr, "integration: watchdog: the test binary %d died without cleaning up; killed %d processes it had started\n", parent, killed)
			return 1
		case <-tick.C:
			for _, p := range watchedDescendants(parent) {
				if p.pid != self && !p.zombie() {
					known[p.pid] = p.start
				}
			}
		}
	}
}
