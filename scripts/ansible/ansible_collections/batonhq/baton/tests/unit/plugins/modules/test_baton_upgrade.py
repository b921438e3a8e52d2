# -*- coding: utf-8 -*-

# Copyright: (c) the baton authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Table tests of baton_upgrade's decisions, with a fake module and scripted baton runs.

Run with the collection's parent on the path (integration's TestAnsibleCollection does):
  PYTHONPATH=scripts/ansible python3 scripts/ansible/ansible_collections/batonhq/baton/tests/unit/plugins/modules/test_baton_upgrade.py
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import unittest

from ansible_collections.batonhq.baton.plugins.modules import baton_upgrade


class Exit(Exception):
    def __init__(self, failed, result):
        Exception.__init__(self, result.get('msg'))
        self.failed = failed
        self.result = result


class FakeModule(object):
    """Just what baton_upgrade uses of AnsibleModule; baton's runs are scripted."""

    def __init__(self, params, runs, check_mode=False):
        self.params = dict(pidfile='/run/x.pid', command='status', commit=False, force=False,
                           baton='/usr/bin/baton', flavor='auto', checks=[], check_insecure=False,
                           check_timeout=None, preflight=None, preflight_timeout=None, workers=None,
                           spawn_timeout=None, drain_timeout=None, verify_for=None, stop_timeout=None,
                           lock_timeout=0)
        self.params.update(params)
        self.runs = list(runs)
        self.ran = []
        self.check_mode = check_mode

    def run_command(self, argv):
        self.ran.append(argv[2])
        rc, rep = self.runs.pop(0)
        return rc, json.dumps(rep), 'baton: progress\n'

    def exit_json(self, **result):
        raise Exit(False, result)

    def fail_json(self, **result):
        raise Exit(True, result)


def master(pid, replaced=False):
    return {'identity': {'pid': pid, 'start': 1}, 'binary_replaced': replaced}


IDLE_REPLACED = {'state': 'idle', 'old': master(10, replaced=True)}
IDLE = {'state': 'idle', 'old': master(10)}
DRAINED = {'state': 'drained', 'old': master(10), 'new': master(20)}
STARTED = (0, {'state': 'drained', 'old': master(10), 'new': master(20)})
COMMITTED = (0, {'state': 'committed', 'new': master(20), 'journal': {'old': {'pid': 10}, 'new': {'pid': 20}}})
ROLLED_BACK = (0, {'state': 'rolled-back', 'old': master(10), 'journal': {'old': {'pid': 10}, 'new': {'pid': 20}}})

# name, params, baton runs (status first), check mode, want: failed, changed, did, rc, verbs run
CASES = [
    ('start due', {'command': 'start'}, [(0, IDLE_REPLACED), STARTED], False,
     (False, True, 'started', 0, ['status', 'start'])),
    ('start not due', {'command': 'start'}, [(0, IDLE)], False,
     (False, False, 'nothing', 0, ['status'])),
    ('start forced', {'command': 'start', 'force': True}, [(0, IDLE), STARTED], False,
     (False, True, 'started', 0, ['status', 'start'])),
    ('start already started', {'command': 'start'}, [(0, DRAINED)], False,
     (False, False, 'nothing', 0, ['status'])),
    ('start --commit of a pending one', {'command': 'start', 'commit': True}, [(0, DRAINED), COMMITTED], False,
     (False, True, 'committed', 0, ['status', 'commit'])),
    ('start pending but unhealthy', {'command': 'start'},
     [(0, dict(DRAINED, health=[{'check': 'http://x/health', 'ok': False, 'error': 'status 500'}]))], False,
     (True, False, 'nothing', 0, ['status'])),
    ('start rolled back by baton', {'command': 'start'},
     [(0, IDLE_REPLACED), (1, {'state': 'rolled-back', 'old': master(10), 'error': 'verify: status 500',
                               'journal': {'old': {'pid': 10}, 'new': {'pid': 20}}})], False,
     (True, True, 'started', 1, ['status', 'start'])),
    ('start refused', {'command': 'start'}, [(0, IDLE_REPLACED), (2, {'state': 'idle', 'error': 'preflight failed'})], False,
     (True, False, 'nothing', 2, ['status', 'start'])),
    ('start after an interrupted commit', {'command': 'start'}, [(0, dict(DRAINED, state='committing'))], False,
     (True, False, 'nothing', 4, ['status'])),
    ('start inconsistent', {'command': 'start'}, [(4, dict(DRAINED, state='inconsistent', advice='roll back'))], False,
     (True, False, 'nothing', 4, ['status'])),
    ('start in check mode', {'command': 'start'}, [(0, IDLE_REPLACED)], True,
     (False, True, 'started', 0, ['status'])),
    ('commit pending', {'command': 'commit'}, [(0, DRAINED), COMMITTED], False,
     (False, True, 'committed', 0, ['status', 'commit'])),
    ('commit settled', {'command': 'commit'}, [(0, IDLE)], False,
     (False, False, 'nothing', 0, ['status'])),
    ('commit interrupted in draining', {'command': 'commit'}, [(0, dict(DRAINED, state='draining')), COMMITTED], False,
     (False, True, 'committed', 0, ['status', 'commit'])),
    ('commit in check mode', {'command': 'commit'}, [(0, DRAINED)], True,
     (False, True, 'committed', 0, ['status'])),
    ('rollback pending', {'command': 'rollback'}, [(0, DRAINED), ROLLED_BACK], False,
     (False, True, 'rolled back', 0, ['status', 'rollback'])),
    ('rollback inconsistent', {'command': 'rollback'}, [(4, dict(DRAINED, state='inconsistent')), ROLLED_BACK], False,
     (False, True, 'rolled back', 0, ['status', 'rollback'])),
    ('rollback settled', {'command': 'rollback'}, [(0, IDLE)], False,
     (False, False, 'nothing', 0, ['status'])),
    ('status', {}, [(0, IDLE_REPLACED)], False,
     (False, False, 'nothing', 0, ['status'])),
    ('status, no master', {}, [(2, {'error': 'no master'})], False,
     (True, False, 'nothing', 2, ['status'])),
    ('lock held past lock_timeout', {'command': 'commit'}, [(0, dict(DRAINED, lock_holder=99))], False,
     (True, False, 'nothing', 3, ['status'])),
    ('no master runs', {'command': 'start'}, [(0, {'state': 'down'})], False,
     (True, False, 'nothing', 2, ['status'])),
]


class DecisionTest(unittest.TestCase):
    def test_cases(self):
        for name, params, runs, check, want in CASES:
            with self.subTest(name):
                m = FakeModule(params, runs, check_mode=check)
                with self.assertRaises(Exit) as done:
                    baton_upgrade.Upgrade(m).run()
                r = done.exception.result
                got = (done.exception.failed, r['changed'], r['did'], r['rc'], m.ran)
                self.assertEqual(got, want, r.get('msg'))
                self.assertEqual(m.runs, [], 'scripted baton runs left over')

    def test_masters(self):
        m = FakeModule({'command': 'commit'}, [(0, DRAINED), COMMITTED])
        with self.assertRaises(Exit) as done:
            baton_upgrade.Upgrade(m).run()
        r = done.exception.result
        self.assertEqual((r['old_master'], r['new_master'], r['master'], r['state']), (10, 20, 20, 'committed'))


if __name__ == '__main__':
    unittest.main()
