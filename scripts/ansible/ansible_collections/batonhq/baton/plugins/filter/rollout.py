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


def baton_summary(hosts, hostvars):
    """One line per host: result, masters and, for a failure, the reason."""
    out = []
    width = max([len(h) for h in hosts] or [0])
    for h in hosts:
        r = _var(hostvars, h, 'baton_rollout_result')
        if not r:
            out.append('%-*s  untouched' % (width, h))
            continue
        line = '%-*s  %s' % (width, h, r.get('result', '?'))
        old, new = r.get('old_master') or 0, r.get('new_master') or 0
        if r.get('result') == 'upgraded':
            line += ': master %s -> %s' % (old, new)
        elif r.get('result') == 'rolled back':
            line += ': master %s serving, new master %s stopped' % (old, new or 'none')
        else:
            line += ': master %s' % (r.get('master') or old or new)
        if r.get('reason'):
            line += ' (%s)' % r['reason']
        out.append(line)
    return out


def baton_untouched(hosts, hostvars):
    """The hosts in hosts that have no baton_rollout_result yet."""
    return [h for h in hosts if not _var(hostvars, h, 'baton_rollout_result')]


class FilterModule(object):
    def filters(self):
        return {
            'baton_failures': baton_failures,
            'baton_summary': baton_summary,
            'baton_untouched': baton_untouched,
        }
