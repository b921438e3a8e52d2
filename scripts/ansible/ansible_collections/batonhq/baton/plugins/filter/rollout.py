# -*- coding: utf-8 -*-

# Copyright: (c) the baton authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters of the baton_rollout role: a batch's failures and the summary."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


def _var(hostvars, host, name, default=None):
    try:
        return hostvars[host].get(name, default)
    except KeyError:
        return default


def baton_failures(hosts, hostvars):
    """'host: reason' for each host in hosts with a non-empty baton_rollout_error
    or whose start (baton_rollout_start) found it unreachable."""
    out = []
    for h in hosts:
        err = _var(hostvars, h, 'baton_rollout_error') or ''
        start = _var(hostvars, h, 'baton_rollout_start') or {}
        if not err and start.get('unreachable'):
            err = 'unreachable: %s' % start.get('msg', '')
        if err:
            out.append('%s: %s' % (h, err))
    return out


def baton_result(host, hostvars):
    """What the rollout did to host, from the role's registered results and facts: a dict
    with result (upgraded, unchanged, rolled back, not started, failed or untouched),
    old_master, new_master, master and reason."""
    failures = _var(hostvars, host, 'baton_rollout_failures')
    if failures is None:
        return dict(result='untouched', old_master=0, new_master=0, master=0, reason='')
    start = _var(hostvars, host, 'baton_rollout_start') or {}
    commit = _var(hostvars, host, 'baton_rollout_commit') or {}
    rollback = _var(hostvars, host, 'baton_rollout_rollback') or {}
    error = _var(hostvars, host, 'baton_rollout_error') or ''
    started = start.get('did') in ('started', 'committed')  # a failed start that baton rolled back too
    upgraded = start.get('did', 'nothing') != 'nothing' or commit.get('did') == 'committed'
    if failures:
        if rollback.get('did') == 'rolled back' or started:
            result = 'rolled back'
        else:
            result = 'failed' if error else 'not started'
    elif error:
        result = 'failed'
    else:
        result = 'upgraded' if upgraded else 'unchanged'
    return dict(result=result, old_master=start.get('old_master', 0), new_master=start.get('new_master', 0),
                master=commit.get('master') or start.get('master', 0), reason=error)


def baton_summary(hosts, hostvars):
    """One line per host: result, masters and, for a failure, the reason."""
    out = []
    width = max([len(h) for h in hosts] or [0])
    for h in hosts:
        r = baton_result(h, hostvars)
        line = '%-*s  %s' % (width, h, r['result'])
        if r['result'] == 'upgraded':
            line += ': master %s -> %s' % (r['old_master'], r['new_master'])
        elif r['result'] == 'rolled back':
            line += ': master %s serving, new master %s stopped' % (r['old_master'], r['new_master'] or 'none')
        elif r['result'] != 'untouched':
            line += ': master %s' % (r['master'] or r['old_master'])
        if r['reason']:
            line += ' (%s)' % r['reason']
        out.append(line)
    return out


def baton_untouched(hosts, hostvars):
    """The hosts in hosts the rollout has not reached yet."""
    return [h for h in hosts if _var(hostvars, h, 'baton_rollout_failures') is None]


class FilterModule(object):
    def filters(self):
        return {
            'baton_failures': baton_failures,
            'baton_result': baton_result,
            'baton_summary': baton_summary,
            'baton_untouched': baton_untouched,
        }
