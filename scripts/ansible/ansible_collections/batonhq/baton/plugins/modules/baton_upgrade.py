#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: (c) the baton authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: baton_upgrade
short_description: Checked, rollback-able binary upgrade of a running master with baton
version_added: "0.1.0"
description:
  - Runs C(baton upgrade start|commit|rollback|status --json) against the master (nginx,
    unicorn, gunicorn or C(baton run)) named by C(pidfile) and returns baton's JSON report.
  - Idempotent. C(command=start) starts an upgrade only when one is due (the running master's
    binary was replaced on disk, or C(force=true)) and none is pending; a host already running
    the new binary, or with an upgrade already started, reports ok and unchanged.
    C(command=commit) and C(command=rollback) act only on a pending upgrade (or one left
    inconsistent) and are unchanged on a settled host.
  - Every verb first reads C(baton upgrade status), so a play interrupted half way (the
    controller killed) resumes from baton's journal on the host - while another baton holds
    the host's upgrade lock it waits (C(lock_timeout)); an upgrade already started counts as
    started; one whose orchestrator was killed half way (state C(spawning), C(draining),
    C(committing) or C(rolling-back) with no baton running) is finished by C(command=commit)
    or C(command=rollback), and fails C(command=start) with baton's advice.
  - baton's exit codes become failures that say what happened on the host; see C(rc).
  - In check mode nothing is signalled; the result says what would be done, from C(status).
author:
  - the baton authors
requirements:
  - C(baton) on the managed host (U(https://github.com/batonhq/baton)); run as root or as the
    master's user.
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  pidfile:
    description:
      - The master's pid file, as given to C(baton upgrade --pidfile).
    type: path
    required: true
  command:
    description:
      - C(start) starts an upgrade when one is due and none is pending (with C(commit=true) it
        also commits, and commits one already pending).
      - C(commit) stops the old master of a pending upgrade.
      - C(rollback) brings the old master back and stops the new one.
      - C(status) only reports; never changed.
    type: str
    choices: [start, commit, rollback, status]
    default: status
  commit:
    description:
      - With C(command=start), commit once the upgrade is verified (C(baton upgrade start --commit)).
    type: bool
    default: false
  force:
    description:
      - With C(command=start), start an upgrade even though the running master's binary was not
        replaced on disk (a new configuration or release directory only).
      - A forced start is not idempotent; guard it with a condition of your own.
    type: bool
    default: false
  baton:
    description:
      - The baton executable on the managed host.
    type: path
    default: baton
  flavor:
    description:
      - The master's dialect; C(auto) detects it from its command line.
    type: str
    choices: [auto, nginx, unicorn, gunicorn, baton]
    default: auto
  checks:
    description:
      - Health checks (C(--check)), each C(http://HOST:PORT/PATH), C(https://...),
        C(unix:/PATH.sock:/PATH), C(tcp://HOST:PORT) or C(exec:CMD).
      - With C(command=status), and before acting on a pending upgrade, they are run too; a
        pending upgrade whose checks fail is not reported as started.
    type: list
    elements: str
    default: []
  check_insecure:
    description:
      - Do not verify the TLS certificates of C(https://) checks.
    type: bool
    default: false
  check_timeout:
    description:
      - Bound on one run of one check, a Go duration such as C(5s).
    type: str
  preflight:
    description:
      - Shell command that must succeed before anything is signalled, for example C(nginx -t).
    type: str
  preflight_timeout:
    description:
      - Bound on C(preflight), a Go duration.
    type: str
  workers:
    description:
      - Workers the new master must have; as many as the old one has when unset.
    type: int
  spawn_timeout:
    description:
      - Time for the new master to be up, verified and healthy (and, for a rollback, for the
        old master's workers to come back), a Go duration.
    type: str
  drain_timeout:
    description:
      - Time for the old workers to exit, a Go duration.
    type: str
  verify_for:
    description:
      - How long the checks must keep passing against the new generation, a Go duration;
        C(0s) for no verify period.
    type: str
  stop_timeout:
    description:
      - Grace period of each step of stopping a master, a Go duration.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another baton holding the upgrade lock (an orchestrator still
        running from an interrupted play) before failing as busy.
    type: int
    default: 120
notes:
  - baton's exit codes, in C(rc) - C(1) failed and rolled back (the old generation serves),
    C(2) refused before anything was signalled, C(3) busy, C(4) inconsistent (C(advice) says
    what to do, usually C(command=commit) or C(command=rollback)).
  - For a rolling upgrade of many hosts in batches that commit or roll back together, use the
    role C(batonhq.baton.baton_rollout).
seealso:
  - name: baton README, Rolling out across hosts
    description: The playbook to copy and how its batches differ from plain C(serial).
    link: https://github.com/batonhq/baton#rolling-out-across-hosts
'''

EXAMPLES = r'''
- name: Upgrade nginx if its binary was replaced (apt upgrade), and commit
  batonhq.baton.baton_upgrade:
    pidfile: /run/nginx.pid
    command: start
    commit: true
    preflight: /usr/sbin/nginx -t
    checks:
      - http://127.0.0.1/health

- name: Start an upgrade of a baton master and leave both generations up
  batonhq.baton.baton_upgrade:
    pidfile: /run/app.pid
    command: start
    checks: [http://127.0.0.1:8080/health]
    verify_for: 5s
  register: started

- name: Commit it
  batonhq.baton.baton_upgrade:
    pidfile: /run/app.pid
    command: commit

- name: Or roll it back
  batonhq.baton.baton_upgrade:
    pidfile: /run/app.pid
    command: rollback

- name: Is an upgrade due?
  batonhq.baton.baton_upgrade:
    pidfile: /run/nginx.pid
  register: st

- name: Say so
  ansible.builtin.debug:
    msg: "due: {{ st.binary_replaced }}, state {{ st.state }}"
'''

RETURN = r'''
state:
  description: baton's upgrade state after the module ran (C(idle), C(drained), C(committed),
    C(rolled-back), C(inconsistent), ...).
  returned: always
  type: str
  sample: committed
before:
  description: The state C(baton upgrade status) reported before anything was done.
  returned: always
  type: str
  sample: idle
did:
  description: What the module did - C(started), C(committed), C(rolled back), or C(nothing).
    In check mode, what it would do.
  returned: always
  type: str
  sample: started
binary_replaced:
  description: Whether the running master's binary was replaced on disk before the module ran
    (an upgrade is due).
  returned: always
  type: bool
  sample: true
old_master:
  description: Pid of the old master (the one serving before the upgrade); 0 if none.
  returned: always
  type: int
  sample: 1234
new_master:
  description: Pid of the new master of the upgrade; 0 if none.
  returned: always
  type: int
  sample: 1301
master:
  description: Pid of the master serving once the module is done; 0 if none.
  returned: always
  type: int
  sample: 1301
advice:
  description: baton's advice for a state that needs a decision.
  returned: when baton gave one
  type: str
rc:
  description: Exit code of the last baton command run (0 ok, 1 failed and rolled back, 2
    refused before anything was signalled, 3 busy, 4 inconsistent).
  returned: always
  type: int
  sample: 0
cmd:
  description: The last baton command run.
  returned: always
  type: list
  elements: str
report:
  description: baton's JSON report of the last command run (C(baton upgrade VERB --json)).
  returned: always
  type: dict
stderr_lines:
  description: baton's progress lines of the last command run.
  returned: always
  type: list
  elements: str
'''

import json
import time

from ansible.module_utils.basic import AnsibleModule

# baton's exit codes (cmd/baton/main.go, exitCodes; README "Exit codes").
EXIT_MEANING = {
    1: 'rolled back, the old generation is serving',
    2: 'refused, nothing was signalled',
    3: 'busy, another upgrade holds the lock or is pending',
    4: 'inconsistent, see the advice',
}

# States in which an upgrade is started and awaits a commit or a rollback.
PENDING = ('spawned', 'drained')
# States a baton verb passes through; seen with no baton holding the lock,
# the verb was interrupted (its orchestrator killed) and a commit or a
# rollback finishes it.
INTERRUPTED = ('spawning', 'draining', 'committing', 'rolling-back')


class Baton(object):
    """Runs baton upgrade verbs on one pid file and keeps the last result."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.cmd = []
        self.rc = 0
        self.report = {}
        self.stderr = ''

    def argv(self, verb):
        p = self.params
        argv = [p['baton'], 'upgrade', verb, '--pidfile', p['pidfile'], '--flavor', p['flavor'], '--json']
        for c in p['checks']:
            argv += ['--check', c]
        if p['check_insecure']:
            argv.append('--check-insecure')
        flags = [('check_timeout', '--check-timeout')]
        if verb != 'status':
            flags += [('stop_timeout', '--stop-timeout'), ('spawn_timeout', '--spawn-timeout'),
                      ('drain_timeout', '--drain-timeout')]
        if verb == 'start':
            flags += [('preflight', '--preflight'), ('preflight_timeout', '--preflight-timeout'),
                      ('verify_for', '--verify-for')]
            if p['workers'] is not None:
                argv += ['--workers', str(p['workers'])]
            if p['commit']:
                argv.append('--commit')
        for key, flag in flags:
            if p[key] is not None:
                argv += [flag, p[key]]
        return argv

    def run(self, verb):
        self.cmd = self.argv(verb)
        self.rc, out, self.stderr = self.module.run_command(self.cmd)
        try:
            self.report = json.loads(out) if out.strip() else {}
        except ValueError:
            self.report = {}
        return self.rc, self.report

    def error(self):
        """One line: what baton said went wrong."""
        if self.report.get('error'):
            err = self.report['error']
            return err[len('upgrade: '):] if err.startswith('upgrade: ') else err
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else 'exit %d' % self.rc


def identity(rep, role):
    """The pid of a report's master in role ('old' or 'new'); 0 if none."""
    return ((rep.get(role) or {}).get('identity') or {}).get('pid', 0)


def journal_pid(rep, role):
    """The pid the report's journal records for role; 0 if none."""
    return ((rep.get('journal') or {}).get(role) or {}).get('pid', 0)


def replaced(rep):
    return any((rep.get(role) or {}).get('binary_replaced', False) for role in ('old', 'new'))


def unhealthy(rep):
    return [h for h in rep.get('health') or [] if not h.get('ok')]


DID = {'start': 'started', 'commit': 'committed', 'rollback': 'rolled back'}


class Upgrade(object):
    """One run of the module: status first, then at most one verb."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.baton = Baton(module)
        self.result = dict(changed=False, did='nothing', before='', binary_replaced=False,
                           old_master=0, new_master=0, rc=0)

    def fail(self, msg, rc=None):
        self.finish(rc)
        self.module.fail_json(msg=msg, **self.result)

    def exit(self, msg):
        self.result['msg'] = msg
        self.finish()
        self.module.exit_json(**self.result)

    def status(self):
        """Reads status, waiting while another baton holds the upgrade lock."""
        deadline = time.time() + self.p['lock_timeout']
        while True:
            rc, rep = self.baton.run('status')
            if rc not in (0, 4) or not rep:
                self.fail('baton upgrade status failed (exit %d): %s' % (rc, self.baton.error()))
            if not rep.get('lock_holder'):
                return rep
            if time.time() >= deadline:
                self.fail('busy: pid %s holds the upgrade lock (state %s) for more than %ds' % (
                    rep['lock_holder'], rep.get('state'), self.p['lock_timeout']), rc=3)
            time.sleep(0.5)

    def run(self):
        rep = self.status()
        state = rep.get('state', '')
        self.result.update(before=state, binary_replaced=replaced(rep),
                           old_master=identity(rep, 'old'), new_master=identity(rep, 'new'))
        verb, why = self.decide(state, rep)
        if verb is None:
            self.exit(why)
        self.result.update(changed=True, did=DID[verb])
        if self.module.check_mode:
            self.exit('would %s: %s' % (verb, why))
        rc, out = self.baton.run(verb)
        if rc != 0:
            # A failed start after USR2 rolled back (1) or left both masters (4):
            # the host was changed and changed back. Refusals (2, 3) touched nothing.
            self.result.update(changed=rc in (1, 4), did='nothing' if rc in (2, 3) else self.result['did'])
            self.fail('baton upgrade %s exited %d (%s): %s' % (
                verb, rc, EXIT_MEANING.get(rc, 'failed'), self.baton.error()))
        self.exit(why)

    def decide(self, state, rep):
        """The verb to run (None for none) and why."""
        cmd = self.p['command']
        if cmd == 'status':
            return None, 'state %s' % state
        if state == 'down':
            self.fail('no master runs: %s' % (rep.get('advice') or 'the pid file names no live master'), rc=2)
        pending = state in PENDING
        # No baton holds the lock (status waited for it): an orchestrator
        # stopped half way, and only a commit or a rollback finishes.
        interrupted = state in INTERRUPTED
        if cmd != 'start':
            if pending or interrupted or state == 'inconsistent':
                return cmd, 'an upgrade is pending (state %s)' % state
            return None, 'nothing to %s (state %s)' % (cmd, state)
        if interrupted:
            self.fail('an upgrade was interrupted in state %s and no baton runs: %s' % (
                state, rep.get('advice') or 'commit or roll it back'), rc=4)
        if pending:
            bad = unhealthy(rep)
            if bad:
                self.fail('an upgrade is pending (state %s) but its checks fail: %s' % (
                    state, '; '.join('%s: %s' % (h.get('check'), h.get('error')) for h in bad)))
            if self.p['commit']:
                return 'commit', 'an upgrade is pending (state %s)' % state
            return None, 'an upgrade is already started (state %s)' % state
        if state == 'inconsistent':
            self.fail('inconsistent: %s' % (rep.get('advice') or 'baton upgrade status says what to do'), rc=4)
        if self.p['force']:
            return 'start', 'forced'
        if not replaced(rep):
            return None, 'the master already runs its binary as installed: no upgrade due'
        return 'start', "the master's binary was replaced on disk"

    def finish(self, rc=None):
        """Fills the result from the last baton command."""
        b = self.baton
        rep = b.report
        if b.cmd and b.cmd[2] != 'status':
            # The verb's report (and its journal) name this upgrade's masters.
            self.result['old_master'] = identity(rep, 'old') or journal_pid(rep, 'old') or self.result['old_master']
            self.result['new_master'] = identity(rep, 'new') or journal_pid(rep, 'new') or self.result['new_master']
        state = rep.get('state', '')
        if state in PENDING or state == 'committed':
            serving = identity(rep, 'new') or identity(rep, 'old')
        else:
            serving = identity(rep, 'old') or identity(rep, 'new')
        self.result.update(state=state, master=serving, rc=b.rc if rc is None else rc,
                           cmd=b.cmd, report=rep, stderr_lines=b.stderr.splitlines())
        if rep.get('advice'):
            self.result['advice'] = rep['advice']


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pidfile=dict(type='path', required=True),
            command=dict(type='str', default='status', choices=['start', 'commit', 'rollback', 'status']),
            commit=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            baton=dict(type='path', default='baton'),
            flavor=dict(type='str', default='auto', choices=['auto', 'nginx', 'unicorn', 'gunicorn', 'baton']),
            checks=dict(type='list', elements='str', default=[]),
            check_insecure=dict(type='bool', default=False),
            check_timeout=dict(type='str'),
            preflight=dict(type='str'),
            preflight_timeout=dict(type='str'),
            workers=dict(type='int'),
            spawn_timeout=dict(type='str'),
            drain_timeout=dict(type='str'),
            verify_for=dict(type='str'),
            stop_timeout=dict(type='str'),
            lock_timeout=dict(type='int', default=120),
        ),
        supports_check_mode=True,
    )
    if '/' not in module.params['baton']:
        module.params['baton'] = module.get_bin_path(module.params['baton'], required=True)
    Upgrade(module).run()


if __name__ == '__main__':
    main()
