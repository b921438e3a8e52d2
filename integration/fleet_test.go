package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// This file tests the Ansible collection in scripts/ansible (module
// baton_upgrade, role baton_rollout) on a fleet of six hosts on this machine
// (fleethost_test.go), reached by ssh through each host's own sshd, with the
// playbook the README tells users to copy, under load on every host:
//
//   - all: the whole fleet, serial 2, every host upgraded;
//   - broken: a broken release on one host of the second batch rolls both
//     hosts of that batch back; the first batch stays committed, the third
//     untouched, the playbook fails naming the host and the reason;
//   - check mode reports what start would do, from status, and does nothing;
//   - interrupted: the same playbook after the fix, the controller killed
//     mid-batch (both hosts of the second batch started, its check running);
//   - rerun: the playbook once more continues: the first batch unchanged, the
//     interrupted batch settled from baton's journal, the third upgraded.
//
// Not one request may fail on any host.

// fleetSize is how many hosts the fleet has; the playbook's serial is 2.
const fleetSize = 6

// fleet is the controller's side: ansible.cfg, the inventory, the keys, the
// installed collection and the releases, all in dir.
type fleet struct {
	dir   string
	hosts []*fleetHost
	o     *owner
	runs  int
}

// requireFleetTools skips (with BATON_REQUIRE_PEERS=1, fails) the test when
// Ansible, OpenSSH or the namespace tools are missing.
func requireFleetTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("the fleet test needs root (network namespaces, sshd) and %s=1", EnvRequirePeers)
		}
		t.Skip("the fleet test needs root (network namespaces, sshd)")
	}
	requireTools(t, fleetTools...)
}

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate fleet_test.go")
	}
	return filepath.Join(filepath.Dir(file), "..")
}

// newFleet starts the fleet: keys, namespaces, sshd and a master per host,
// load on each, the releases and the collection built and installed from
// its tarball.
func newFleet(ctx context.Context, t *testing.T) *fleet {
	t.Helper()
	o := ownerOf(t)
	dir, err := os.MkdirTemp("", "bt-fleet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fleet{dir: dir, o: o}
	for _, d := range []string{"keys", "releases", "cp", "ahome", "remote-tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	keys := filepath.Join(dir, "keys")
	for _, k := range []string{"host_ed25519", "client_ed25519"} {
		mustRun(t, "/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "baton-fleet-test", "-f", filepath.Join(keys, k))
	}
	pub, err := os.ReadFile(filepath.Join(keys, "client_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(keys, "authorized_keys"), string(pub), 0o600)
	privsepDir(t)
	for i := range fleetSize {
		h := &fleetHost{name: fmt.Sprintf("h%d", i+1), netns: fmt.Sprintf("btfleet-%d-%d", os.Getpid(), i+1)}
		h.dir = filepath.Join(dir, h.name)
		h.pidfile = filepath.Join(h.dir, "baton.pid")
		addNetns(t, h.netns)
		f.hosts = append(f.hosts, h)
	}
	for _, h := range f.hosts {
		h.startMaster(ctx, t, o, "v1")
		h.startSshd(ctx, t, o, keys)
		h.startLoad(t, o)
	}
	for _, v := range []string{"v2", "v3"} {
		f.release(t, v)
	}
	f.installCollection(t)
	f.writeControllerFiles(t)
	return f
}

// privsepDir makes sshd's privilege separation directory, /run/sshd, when
// the system has none (no sshd ever ran), and removes it at the end.
func privsepDir(t *testing.T) {
	t.Helper()
	const d = "/run/sshd"
	if _, err := os.Stat(d); err == nil {
		return
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(d) })
}

// mustRun runs a command and fails the test if it fails.
func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// release stages version v: a baton build that differs from every other
// (bytes appended to the ELF, which runs unchanged), for the release tasks
// to install on the hosts.
func (f *fleet) release(t *testing.T, v string) {
	t.Helper()
	data, err := os.ReadFile(batonBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.dir, "releases", v), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.dir, "releases", v, "baton"), string(data)+"\nbaton fleet test release "+v+"\n", 0o755)
}

// ansibleEnv is the environment of every Ansible command: the test's
// ansible.cfg, Ansible's own files in the test's directory, no colour, and
// the owner's marker (the ssh control masters carry it).
func (f *fleet) ansibleEnv() []string {
	return append(os.Environ(), f.o.marker,
		"ANSIBLE_CONFIG="+filepath.Join(f.dir, "ansible.cfg"),
		"ANSIBLE_HOME="+filepath.Join(f.dir, "ahome"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0")
}

// installCollection builds the collection's tarball with ansible-galaxy and
// installs it from the tarball, as a user would.
func (f *fleet) installCollection(t *testing.T) {
	t.Helper()
	src := filepath.Join(repoRoot(t), "scripts", "ansible", "ansible_collections", "batonhq", "baton")
	run := func(args ...string) string {
		cmd := exec.Command("/usr/bin/ansible-galaxy", args...)
		cmd.Env = f.ansibleEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ansible-galaxy %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("collection", "build", src, "--output-path", f.dir)
	tarballs, _ := filepath.Glob(filepath.Join(f.dir, "batonhq-baton-*.tar.gz"))
	if len(tarballs) != 1 {
		t.Fatalf("ansible-galaxy collection build made %v", tarballs)
	}
	run("collection", "install", "--offline", "-p", filepath.Join(f.dir, "collections"), tarballs[0])
}

// readmePlaybook is the playbook of the README's "Rolling out across hosts"
// section (its first yaml block): the test runs what users copy.
func readmePlaybook(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(data), "\n## Rolling out across hosts\n")
	if !ok {
		t.Fatal(`README.md has no "## Rolling out across hosts" section`)
	}
	_, block, ok := strings.Cut(sec, "\n```yaml\n")
	if !ok {
		t.Fatal(`README.md's "Rolling out across hosts" has no yaml block`)
	}
	block, _, _ = strings.Cut(block, "\n```")
	return block + "\n"
}

// writeControllerFiles writes ansible.cfg, the inventory (group web, as in
// the README's playbook), the playbook and the release tasks.
func (f *fleet) writeControllerFiles(t *testing.T) {
	t.Helper()
	f.writeAnsibleCfg(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]any{}
	for _, h := range f.hosts {
		hosts[h.name] = map[string]any{
			// ansible_host differs per host so that each gets its own ssh
			// control master; the ProxyCommand ignores it.
			"ansible_host": h.name,
			"ansible_ssh_common_args": fmt.Sprintf(`-o ProxyCommand="env %s=fleet-proxy /usr/bin/nsenter --net=%s %s 127.0.0.1:22"`,
				envHelper, h.nsPath(), exe),
			"fleet_dir": h.dir,
		}
	}
	inv := map[string]any{"web": map[string]any{
		"hosts": hosts,
		"vars": map[string]any{
			"ansible_user":                 "root",
			"ansible_port":                 22,
			"ansible_ssh_private_key_file": filepath.Join(f.dir, "keys", "client_ed25519"),
			"baton_rollout_pidfile":        "{{ fleet_dir }}/baton.pid",
			"baton_rollout_baton":          batonBin,
			"baton_rollout_checks":         []string{fmt.Sprintf("http://127.0.0.1:%d/health", fleetPort)},
			"baton_rollout_verify_for":     "1s",
			"baton_rollout_release_tasks":  filepath.Join(f.dir, "release.yml"),
			"fleet_releases":               filepath.Join(f.dir, "releases"),
			"fleet_broken":                 []string{},
		},
	}}
	data, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.dir, "inventory.json"), string(data), 0o644)
	writeFile(t, filepath.Join(f.dir, "rollout.yml"), readmePlaybook(t), 0o644)
	writeFile(t, filepath.Join(f.dir, "release.yml"), fleetReleaseTasks, 0o644)
}

// writeAnsibleCfg writes the controller's ansible.cfg: everything Ansible
// writes in the test's directory, one ssh control master per host.
func (f *fleet) writeAnsibleCfg(t *testing.T) {
	t.Helper()
	writeFile(t, filepath.Join(f.dir, "ansible.cfg"), fmt.Sprintf(`# written by baton's fleet test
[defaults]
forks = %d
gathering = explicit
host_key_checking = False
interpreter_python = /usr/bin/python3
collections_path = %[2]s/collections
remote_tmp = %[2]s/remote-tmp
local_tmp = %[2]s/ahome/tmp
retry_files_enabled = False
# Ansible's default, 1ms, busy-polls its workers: CPU the hosts' load needs.
internal_poll_interval = 0.05

[ssh_connection]
pipelining = True
control_path_dir = %[2]s/cp
ssh_args = -F /dev/null -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
`, fleetSize, f.dir), 0o644)
}

// fleetReleaseTasks put release fleet_version on a host: the master's binary
// and the app's configuration, broken (/health answers 500) on the hosts
// listed in fleet_broken.
const fleetReleaseTasks = `---
- name: Install the release's baton binary
  ansible.builtin.copy:
    src: "{{ fleet_releases }}/{{ fleet_version }}/baton"
    dest: "{{ fleet_dir }}/bin/baton"
    remote_src: true
    mode: "0755"

- name: Configure the app
  ansible.builtin.copy:
    dest: "{{ fleet_dir }}/app/app.env"
    content: "DEMO_VERSION={{ fleet_version }}\n{{ 'DEMO_FAIL=1\n' if inventory_hostname in fleet_broken else '' }}"
    mode: "0644"
`

// play is one ansible-playbook run.
type play struct {
	cmd    *exec.Cmd
	out    syncBuffer
	waited <-chan error
	log    string
}

// startPlaybook runs the rollout playbook with extra vars, in its own process
// group (the controller, its forks and its ssh clients).
func (f *fleet) startPlaybook(t *testing.T, extra map[string]any) *play {
	t.Helper()
	f.runs++
	data, err := json.Marshal(extra)
	if err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(f.dir, fmt.Sprintf("extra-%d.json", f.runs))
	writeFile(t, vars, string(data), 0o644)
	p := &play{log: filepath.Join(f.dir, fmt.Sprintf("play-%d.log", f.runs))}
	p.cmd = exec.Command("/usr/bin/ansible-playbook", "-i", filepath.Join(f.dir, "inventory.json"),
		"-e", "@"+vars, filepath.Join(f.dir, "rollout.yml"))
	p.cmd.Dir = f.dir
	p.cmd.Env = f.ansibleEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.waited, err = startManaged(p.cmd); err != nil {
		t.Fatalf("ansible-playbook: %v", err)
	}
	f.o.adopt(p.cmd.Process.Pid)
	return p
}

// wait waits for the playbook and returns its exit code (-1: killed).
func (p *play) wait(ctx context.Context, t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.waited:
		os.WriteFile(p.log, []byte(p.out.String()), 0o644)
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		default:
			t.Fatalf("ansible-playbook: %v", err)
		}
	case <-ctx.Done():
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.waited
		t.Fatalf("ansible-playbook did not finish: %v\n%s", ctx.Err(), p.out.String())
	}
	return -1
}

// playbook runs the playbook to its end and fails the test unless it exits
// with want; it returns the output.
func (f *fleet) playbook(ctx context.Context, t *testing.T, want int, extra map[string]any) string {
	t.Helper()
	p := f.startPlaybook(t, extra)
	code := p.wait(ctx, t)
	out := p.out.String()
	if code != want {
		t.Fatalf("ansible-playbook exited %d, want %d:\n%s", code, want, out)
	}
	t.Logf("ansible-playbook run %d: exit %d, %s; summary and recap:\n%s\n%s", f.runs, code, cpuTime(p.cmd), summary(out), recap(out))
	return out
}

// recapLine matches a host's line of the PLAY RECAP.
var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// summary is the role's last summary in a playbook's output ("" if none).
func summary(out string) string {
	i := strings.LastIndex(out, "Summarize the rollout]")
	if i < 0 {
		return ""
	}
	s := out[i:]
	if _, after, ok := strings.Cut(s, "\n"); ok {
		s = after
	}
	s, _, _ = strings.Cut(s, "\nTASK [")
	return strings.TrimSpace(s)
}

// cpuTime is the CPU time a finished command and the children it waited
// for used (Ansible's forks and ssh clients; not the hosts' side).
func cpuTime(cmd *exec.Cmd) string {
	if cmd.ProcessState == nil {
		return "cpu unknown"
	}
	return fmt.Sprintf("cpu %.1fs user %.1fs sys", cmd.ProcessState.UserTime().Seconds(), cmd.ProcessState.SystemTime().Seconds())
}

// recap is the PLAY RECAP of a playbook's output.
func recap(out string) string {
	_, r, _ := strings.Cut(out, "PLAY RECAP")
	return strings.TrimSpace(r)
}

// changedCounts maps each host of the recap to its changed count.
func changedCounts(out string) map[string]string {
	m := map[string]string{}
	for _, s := range recapLine.FindAllStringSubmatch(recap(out), -1) {
		m[s[1]] = s[3]
	}
	return m
}

// masters maps each host to the master its pid file names.
func (f *fleet) masters() map[string]int {
	m := map[string]int{}
	for _, h := range f.hosts {
		m[h.name] = h.master()
	}
	return m
}

// host returns the host named name.
func (f *fleet) host(name string) *fleetHost {
	for _, h := range f.hosts {
		if h.name == name {
			return h
		}
	}
	panic("no fleet host " + name)
}
