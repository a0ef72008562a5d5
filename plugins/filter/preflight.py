# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight's filters: thin wrappers of the checks in plugins/module_utils/preflight_*.py.

* ``preflight_load_argument_specs(roles_dir)``: ``meta/argument_specs.yml`` of every role (argspec.py).
* ``groups | preflight_inventory_checks(hostvars, ...)``: the inventory stage, before any host is contacted
  (preflight_inventory.py).
* ``facts | preflight_host_checks(host, params)``: one host, from its facts (preflight_hosts.py).
* ``ansible_facts | preflight_identity(node_ip)``: what the checks across hosts need of one host's facts.
* ``identities | preflight_cross_host_checks(model, vip_interface)``: across hosts, from their facts.
* ``checks | preflight_report(...)``: the report written to preflight_report_path (preflight_report.py).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec
from ansible_collections.gpuforge.cluster.plugins.module_utils import preflight_hosts, preflight_inventory
from ansible_collections.gpuforge.cluster.plugins.module_utils import preflight_report as report_module


def _call(name, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except (argspec.SpecError, report_module.PreflightError) as exc:
        raise AnsibleFilterError("%s: %s" % (name, exc)) from exc


def preflight_load_argument_specs(roles_dir=None):
    return _call("preflight_load_argument_specs", argspec.load_argument_specs, roles_dir)


def preflight_inventory_checks(groups, hostvars, argument_specs=None, required_groups=None, sources=None,
                               playbook_dir=None):
    return _call("preflight_inventory_checks", preflight_inventory.inventory_checks, groups, hostvars,
                 specs=argument_specs, required_groups=required_groups, sources=sources, playbook_dir=playbook_dir)


def preflight_host_checks(facts, host, params=None):
    return _call("preflight_host_checks", preflight_hosts.host_checks, facts, host, params)


def preflight_identity(facts, node_ip=None):
    return _call("preflight_identity", preflight_hosts.identity, facts, node_ip)


def preflight_cross_host_checks(identities, model=None, vip_interface=None):
    return _call("preflight_cross_host_checks", preflight_hosts.cross_host_checks, identities, model, vip_interface)


def preflight_report(checks, hosts=None, active_hosts=None, path=None, generated_at=None, stage=None):
    return _call("preflight_report", report_module.report, checks, hosts=hosts, active_hosts=active_hosts, path=path,
                 generated_at=generated_at, stage=stage)


class FilterModule(object):
    """gpuforge.cluster preflight filters."""

    def filters(self):
        return {
            "preflight_load_argument_specs": preflight_load_argument_specs,
            "preflight_inventory_checks": preflight_inventory_checks,
            "preflight_host_checks": preflight_host_checks,
            "preflight_identity": preflight_identity,
            "preflight_cross_host_checks": preflight_cross_host_checks,
            "preflight_report": preflight_report,
        }
