package master

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/batonhq/baton/procs"
)

// Variables a worker receives from the master.
const (
	EnvListenFDs     = "LISTEN_FDS"          // number of listeners, at fds 3..
	EnvListenPID     = "LISTEN_PID"          // the worker's own pid (set by the exec trampoline)
	EnvListenFDNames = "LISTEN_FDNAMES"      // names, ':'-separated, "unknown" when unnamed
	EnvServerStarter = "SERVER_STARTER_PORT" // Server::Starter's "addr=fd;addr=fd"
	EnvGeneration    = "BATON_GENERATION"    // the worker generation, from 1
	EnvWorker        = "BATON_WORKER"        // the worker's slot, from 0
	EnvNotifySocket  = "NOTIFY_SOCKET"       // baton's own socket with --ready notify; systemd's for the master
)

// systemd's watchdog (sd_watchdog_enabled(3)), for the master: a worker
// never gets them.
const (
	EnvWatchdogUsec = "WATCHDOG_USEC" // the period, in microseconds
	EnvWatchdogPID  = "WATCHDOG_PID"  // the process that must ping
)

// Baton-internal variables, set by a master for the master it starts on USR2.
// They never reach a worker.
const (
	// EnvInheritFDs describes the listeners passed across exec (JSON).
	EnvInheritFDs = "BATON_INHERIT_FDS"
	// EnvMasterEnv is the environment the first master was started with
	// (JSON list of KEY=VALUE), so that it does not grow with every upgrade.
	EnvMasterEnv = "BATON_MASTER_ENV"
	// EnvMasterParent is the identity ("PID@START") of the master that
	// started this one on USR2.
	EnvMasterParent = "BATON_MASTER_PARENT"
	// EnvMasterCwd is the directory the first master was started in; relative
	// paths in the arguments resolve against it, even if it is gone.
	EnvMasterCwd = "BATON_MASTER_CWD"
	// EnvMasterGeneration is the worker generation of the parent master.
	EnvMasterGeneration = "BATON_MASTER_GENERATION"
)

// internalVars never pass from a master to the environment it records.
var internalVars = []string{EnvInheritFDs, EnvMasterEnv, EnvMasterParent, EnvMasterCwd, EnvMasterGeneration,
	EnvListenFDs, EnvListenPID, EnvListenFDNames}

// Environment policy
//
//   - The master records the environment it was first started with, minus
//     baton-internal and socket-activation variables, and every later master
//     (USR2) starts from that record, not from its own environment.
//   - A worker starts from that record, minus every BATON_* variable (the
//     master's own configuration), NOTIFY_SOCKET (the master's systemd socket:
//     an old worker's STOPPING=1 must never reach systemd), WATCHDOG_USEC and
//     WATCHDOG_PID (the master's watchdog), LISTEN_* and SERVER_STARTER_PORT,
//     minus --env-drop names; then --envfile, re-read at every start, is
//     applied; then baton's own variables.

// masterEnv returns the recorded first environment: from EnvMasterEnv when
// this master was started by another, else env with internal variables removed.
func masterEnv(env []string) ([]string, error) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, EnvMasterEnv+"="); ok {
			var rec []string
			if err := json.Unmarshal([]byte(v), &rec); err != nil {
				return nil, fmt.Errorf("master: %s: %w", EnvMasterEnv, err)
			}
			return rec, nil
		}
	}
	return procs.DropEnv(env, func(name string) bool { return slices.Contains(internalVars, name) }), nil
}

// setVar sets name=value in env, replacing an earlier value.
func setVar(env []string, name, value string) []string {
	env = procs.DropEnv(env, func(n string) bool { return n == name })
	return append(env, name+"="+value)
}

// workerBaseEnv applies the policy to the recorded environment.
func workerBaseEnv(rec []string, envDrop []string) []string {
	return procs.DropEnv(rec, func(name string) bool {
		return strings.HasPrefix(name, "BATON_") || strings.HasPrefix(name, "LISTEN_") ||
			name == EnvNotifySocket || name == EnvWatchdogUsec || name == EnvWatchdogPID ||
			name == EnvServerStarter || slices.Contains(envDrop, name)
	})
}

// readEnvFile reads KEY=VALUE lines. Blank lines and lines starting with '#'
// are skipped, "export " before a key is allowed, and a value wholly inside
// single or double quotes is unquoted (no escapes, no expansion).
func readEnvFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master: envfile: %w", err)
	}
	return parseEnvFile(path, data)
}

func parseEnvFile(name string, data []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || !validEnvName(k) {
			return nil, fmt.Errorf("master: envfile %s:%d: want KEY=VALUE", name, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("master: envfile %s:%d: NUL in value", name, n)
		}
		out = append(out, k+"="+v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("master: envfile %s: %w", name, err)
	}
	return out, nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
