# -*- coding: utf-8 -*-

# Copyright: (c) the baton authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Table tests of the baton_rollout role's filters (run like test_baton_upgrade.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import unittest

from ansible_collections.batonhq.baton.plugins.filter import rollout

STARTED = {'did': 'started', 'old_master': 10, 'new_master': 20, 'master': 20}
UNCHANGED = {'did': 'nothing', 'old_master': 10, 'new_master': 0, 'master': 10}
SKIPPED = {'skipped': True, 'changed': False}

# name, the host's vars, want: result, reason
CASES = [
    ('not reached', {}, ('untouched', '')),
    ('upgraded', {'baton_rollout_failures': [], 'baton_rollout_start': STARTED,
                  'baton_rollout_commit': {'did': 'committed', 'master': 20}}, ('upgraded', '')),
    ('resumed and committed', {'baton_rollout_failures': [], 'baton_rollout_start': dict(UNCHANGED, new_master=20),
                               'baton_rollout_commit': {'did': 'committed', 'master': 20}}, ('upgraded', '')),
    ('unchanged', {'baton_rollout_failures': [], 'baton_rollout_start': UNCHANGED,
                   'baton_rollout_commit': {'did': 'nothing', 'master': 10}}, ('unchanged', '')),
    ('its own start rolled back', {'baton_rollout_failures': ['h: bad'], 'baton_rollout_error': 'bad',
                                   'baton_rollout_start': STARTED, 'baton_rollout_commit': SKIPPED,
                                   'baton_rollout_rollback': {'did': 'nothing'}}, ('rolled back', 'bad')),
    ('rolled back with its batch', {'baton_rollout_failures': ['other: bad'], 'baton_rollout_error': '',
                                    'baton_rollout_start': STARTED, 'baton_rollout_commit': SKIPPED,
                                    'baton_rollout_rollback': {'did': 'rolled back'}}, ('rolled back', '')),
    ('start refused', {'baton_rollout_failures': ['h: refused'], 'baton_rollout_error': 'refused',
                       'baton_rollout_start': dict(UNCHANGED, failed=True),
                       'baton_rollout_rollback': {'did': 'nothing'}}, ('failed', 'refused')),
    ('release failed elsewhere', {'baton_rollout_failures': ['other: release'], 'baton_rollout_start': SKIPPED,
                                  'baton_rollout_rollback': {'did': 'nothing'}}, ('not started', '')),
    ('commit failed', {'baton_rollout_failures': [], 'baton_rollout_error': 'commit: boom',
                       'baton_rollout_start': STARTED}, ('failed', 'commit: boom')),
]


class FilterTest(unittest.TestCase):
    def test_result(self):
        for name, hv, want in CASES:
            with self.subTest(name):
                r = rollout.baton_result('h', {'h': hv})
                self.assertEqual((r['result'], r['reason']), want)

    def test_failures(self):
        hostvars = {'a': {'baton_rollout_error': ''}, 'b': {'baton_rollout_error': 'x'},
                    'c': {'baton_rollout_start': {'unreachable': True, 'msg': 'no route'}}, 'd': {}}
        self.assertEqual(rollout.baton_failures(['a', 'b', 'c', 'd'], hostvars), ['b: x', 'c: unreachable: no route'])

    def test_summary(self):
        hostvars = {'h1': {'baton_rollout_failures': [], 'baton_rollout_start': STARTED,
                           'baton_rollout_commit': {'did': 'committed', 'master': 20}},
                    'h2': {}}
        self.assertEqual(rollout.baton_summary(['h1', 'h2'], hostvars),
                         ['h1  upgraded: master 10 -> 20', 'h2  untouched'])
        self.assertEqual(rollout.baton_untouched(['h1', 'h2'], hostvars), ['h2'])


if __name__ == '__main__':
    unittest.main()
