# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight's inventory stage: everything that can be judged from the inventory alone, on the controller,
before any host is contacted.

* the groups: k8s_cluster and the required ones exist and have hosts, an odd number of control planes,
  node groups under k8s_cluster, no group one letter off a group gpuforge knows;
* the hosts: node names (the inventory hostname or gpuforge_node_name) valid and unique, ansible_host
  well formed and not shared, gpuforge_node_ip not shared;
* the variables of every cluster host: each one can be evaluated (an undefined Jinja variable in a value
  is a report line naming host and variable), matches its argument spec (type, choices, range, format),
  is a known variable (a misspelt role prefix or name gets the name it most likely meant, a renamed one
  its new name), and the rules of every role hold (variable_rules.py), defaults applied;
* the inventory's files: no duplicate keys;
* the cluster model's checks across hosts (preflight_kubernetes.py).
"""

from __future__ import annotations

import re

from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, cluster, inventory, names, variable_rules
from ansible_collections.gpuforge.cluster.plugins.module_utils.preflight_kubernetes import kubernetes_checks
from ansible_collections.gpuforge.cluster.plugins.module_utils.preflight_report import (
    INVENTORY, REDACTED, record, require_mapping, sharing)

DEFAULT_REQUIRED_GROUPS = [cluster.CONTROL_PLANE_GROUP]
# Facts gpuforge sets during a run (not inventory variables).
RUNTIME_FACTS = frozenset((cluster.FACT, "gpuforge_gpu_node_labels"))
# ansible_host: an IP address, a DNS name or a container name.
_CONNECTION_NAME = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$"


def inventory_checks(groups, hostvars, specs=None, required_groups=None, sources=None, playbook_dir=None):
    """Records of the inventory stage. specs: ``{role: {option: spec}}`` (argspec.load_argument_specs);
    required_groups: overrides preflight_required_groups; sources: ansible_inventory_sources (their files are
    read again for duplicate keys and for where a value was set)."""
    groups = require_mapping(groups, "groups")
    hostvars = require_mapping(hostvars, "hostvars")
    specs = require_mapping(specs if specs is not None else argspec.load_argument_specs(), "argument_specs")
    values = cluster.Values(hostvars, specs)
    records = []
    hosts = cluster.cluster_hosts(groups)
    reference = cluster.reference_host(groups)

    if required_groups is None:
        required_groups = DEFAULT_REQUIRED_GROUPS
        if reference is not None:
            usable, value, _ = values.value(reference, "preflight_required_groups")
            if usable and isinstance(value, list) and all(isinstance(g, str) for g in value):
                required_groups = value
    elif isinstance(required_groups, str):
        required_groups = [g.strip() for g in required_groups.split(",") if g.strip()]
    elif not (isinstance(required_groups, (list, tuple)) and all(isinstance(g, str) for g in required_groups)):
        records.append(record(
            INVENTORY, "variable_type", "preflight_required_groups", required_groups, "list of str", False,
            "preflight_required_groups %s is not a list of group names; checking the default (%s)" % (
                argspec.show(required_groups), ", ".join(DEFAULT_REQUIRED_GROUPS)),
        ))
        required_groups = DEFAULT_REQUIRED_GROUPS
    records.extend(group_checks(groups, list(required_groups)))
    records.extend(group_name_checks(groups))
    records.extend(membership_checks(groups, hosts))
    model, problems = cluster.build(groups, hostvars, specs, playbook_dir)
    records.extend(node_name_checks(hosts, model, problems))
    records.extend(address_checks(hosts, values))
    files = inventory.InventoryFiles(sources, groups, playbook_dir)
    records.extend(file_checks(files))

    def origins(variable, host):
        group_names, _ = inventory.get(inventory.host_vars(hostvars, host), "group_names", [])
        return files.origins(variable, host, group_names or [])

    for host in hosts:
        records.extend(variable_checks(host, values, specs, files.numbers))
    for host in hosts:
        records.extend(rule_checks(host, values, specs, records))
    for host in hosts:
        if not any(r["host"] == host and not r["ok"] for r in records):
            records.append(record(host, "variables", "*", None, "valid", True,
                                  "the role and cluster variables set for this host are valid"))
    records.extend(kubernetes_checks(groups, hosts, values, records, origins))
    return records


# ---------------------------------------------------------------------------------------------
# groups and hosts


def group_checks(groups, required_groups):
    records = []
    wanted = [cluster.CLUSTER_GROUP] + [g for g in required_groups if g != cluster.CLUSTER_GROUP]
    for group in wanted:
        variable = "preflight_required_groups" if group != cluster.CLUSTER_GROUP else "groups['%s']" % group
        if group not in groups:
            hint = argspec.suggest(group, [g for g in groups if g not in ("all", "ungrouped")], cutoff=0.8)
            records.append(record(
                INVENTORY, "group_defined", variable, None, "a group with hosts", False,
                "group %s is not defined%s; %s" % (group, " (the inventory has %s: a typo?)" % hint if hint else "",
                                                   _group_hint(group, required_groups)),
            ))
            continue
        members = list(groups.get(group) or [])
        records.append(record(
            INVENTORY, "group_not_empty", variable, len(members), ">= 1 host", bool(members),
            "group %s has %d host(s)" % (group, len(members)) if members else
            "group %s has no hosts; %s" % (group, _group_hint(group, required_groups)),
        ))
    members = list(groups.get(cluster.CONTROL_PLANE_GROUP) or [])
    if members:
        odd = len(members) % 2 == 1
        records.append(record(
            INVENTORY, "control_plane_odd", "groups['%s']" % cluster.CONTROL_PLANE_GROUP, len(members), "an odd number",
            odd,
            "group control_plane has %d host(s), an odd number as etcd quorum needs" % len(members) if odd else
            "group control_plane has %d hosts (%s); etcd needs an odd number (1, 3, 5) of control-plane nodes "
            "for quorum" % (len(members), ", ".join(members)),
        ))
    return records


def _group_hint(group, required_groups):
    if group == cluster.CLUSTER_GROUP:
        return "every cluster host must be in k8s_cluster (children control_plane and workers)"
    return "preflight_required_groups (%s) lists it as required" % ", ".join(required_groups)


def group_name_checks(groups):
    """A group whose name is one letter off a group gpuforge knows: its hosts would silently miss a layer."""
    records = []
    for group in sorted(groups):
        if group in cluster.KNOWN_GROUPS or group in ("all", "ungrouped") or group.startswith(cluster.PREFIX):
            continue
        hint = argspec.suggest(group, cluster.KNOWN_GROUPS, cutoff=0.8)
        if hint:
            members = list(groups.get(group) or [])
            records.append(record(
                INVENTORY, "group_name", "groups['%s']" % group, group, hint, False,
                "group %s is not a group gpuforge knows; did you mean %s? (its hosts %s are not in %s, so the roles of "
                "%s skip them)" % (group, hint, ", ".join(members) or "(none)", hint, hint),
            ))
    return records


def membership_checks(groups, hosts):
    records = []
    in_cluster = set(groups.get(cluster.CLUSTER_GROUP) or [])
    workers = set(groups.get(cluster.WORKERS_GROUP) or [])
    for host in hosts:
        outside = [g for g in cluster.NODE_GROUPS if host in (groups.get(g) or []) and host not in in_cluster]
        records.append(record(
            host, "host_in_cluster", "groups['%s']" % cluster.CLUSTER_GROUP, host in in_cluster, True, not outside,
            "host is in k8s_cluster" if not outside else
            "host is in group %s but not in k8s_cluster; make %s a child of k8s_cluster" % (
                ", ".join(outside), outside[0]),
        ))
        if host in (groups.get(cluster.GPU_WORKERS_GROUP) or []):
            records.append(record(
                host, "gpu_worker_in_workers", "groups['%s']" % cluster.WORKERS_GROUP, host in workers, True,
                host in workers,
                "GPU worker is in workers" if host in workers else
                "host is in gpu_workers but not in workers; make gpu_workers a child of workers",
            ))
    return records


def node_name_checks(hosts, model, problems):
    """The cluster model's own problems (node names, an HA endpoint for several control planes) as records."""
    records = []
    failed = set()
    for host, variable, check, message in problems:
        if check == "api_endpoint":
            records.append(record(host, check, variable, None, "kube_vip or external", False, message))
        elif check in ("node_name", "node_name_unique"):
            failed.add(host)
            records.append(record(host, check, variable, model["nodes"].get(host, {}).get("name"),
                                  "a unique DNS-1123 subdomain", False, message))
    for host in hosts:
        if host not in failed:
            name = model["nodes"][host]["name"]
            records.append(record(host, "node_name", "gpuforge_node_name" if name != host else "inventory_hostname",
                                  name, "DNS-1123 subdomain", True, "node name %s is a valid DNS-1123 name" % name))
    return records


def address_checks(hosts, values):
    records = []
    by_address = {}
    by_node_ip = {}
    for host in hosts:
        set_here, address, error = values.raw(host, "ansible_host")
        if error is not None:
            continue  # the variable check reports it
        if set_here:
            text = "" if address is None else str(address)
            if not text.strip() or not (names.is_ip(text) or re.match(_CONNECTION_NAME, text)):
                records.append(record(
                    host, "ansible_host", "ansible_host", text, "an IP address or a host name", False,
                    "ansible_host %s is %s: set it to the host's IP address or DNS name (or remove it to use the "
                    "inventory name)" % (argspec.show(text), "empty" if not text.strip() else "not an IP address or "
                                         "a host name%s" % (" (it has %s)" % ", ".join(names.non_ascii(text))
                                                            if names.non_ascii(text) else "")),
                ))
                continue
        _set, port, _error = values.raw(host, "ansible_port")
        key = (str(address if set_here and address else host).lower(), "" if port in (None, "") else str(port))
        by_address.setdefault(key, []).append(host)
        usable, node_ip, _ = values.value(host, "gpuforge_node_ip")
        if usable and node_ip not in (None, ""):
            by_node_ip.setdefault(str(node_ip), []).append(host)
    for (address, port), holders in by_address.items():
        for host in holders:
            others = [n for n in holders if n != host]
            shown = address + (":" + port if port else "")
            records.append(record(
                host, "ansible_host_unique", "ansible_host", shown, "unique", not others,
                "ansible_host %s is not shared with another host" % shown if not others else
                "ansible_host %s is also the address of %s; two inventory names for one machine" % (
                    shown, ", ".join(others)),
            ))
    for node_ip, holders in by_node_ip.items():
        for host, others in sharing(holders):
            records.append(record(
                host, "node_ip_unique", "gpuforge_node_ip", node_ip, "unique", False,
                "gpuforge_node_ip %s is also set for %s; every node needs its own IP" % (node_ip, ", ".join(others)),
            ))
    return records


def file_checks(files):
    records = []
    for path, key, first, line in files.duplicates:
        records.append(record(
            INVENTORY, "inventory_file", key, path, "each key once", False,
            "%s line %d: key %s appears a second time (first at line %d); YAML keeps the last value silently, "
            "so one of them is lost: remove the one you did not mean" % (path, line, key, first),
        ))
    return records


# ---------------------------------------------------------------------------------------------
# variables


def _owners(name, specs, prefixes):
    """[(owner, options)] whose prefix ``name`` carries: 'cluster-wide' for gpuforge_*, else the roles."""
    if name.startswith(cluster.PREFIX):
        return [("cluster-wide", specs.get(cluster.MODEL_ROLE) or {})]
    return [(role, specs[role]) for prefix, role in prefixes if name.startswith(prefix)]


def _owner_text(owner):
    return "cluster-wide variable" if owner == "cluster-wide" else "role %s" % owner


def _renamed(name):
    """A suggested name, or its new name when it is one the cluster model replaced."""
    if name in cluster.RENAMED:
        return cluster.RENAMED[name] or name
    return name


def variable_checks(host, values, specs, numbers=None):
    records = []
    prefixes = sorted(((role + "_", role) for role in specs if role != cluster.MODEL_ROLE), key=lambda p: -len(p[0]))
    known = set()
    for options in specs.values():
        known.update(options)
    variables = inventory.host_vars(values.hostvars, host)
    try:
        found = inventory.variable_names(variables)
    except Exception as exc:  # noqa: BLE001 - report instead of crashing the whole check
        return [record(host, "variable_template", "*", None, "variables", False,
                       "the variables of this host cannot be listed: %s" % str(exc).splitlines()[0])]
    for name in found:
        if name in RUNTIME_FACTS:
            continue
        set_here, value, error = values.raw(host, name)
        if error is not None:
            records.append(record(host, "variable_template", name, None, "a value", False,
                                  "%s cannot be evaluated: %s" % (name, error)))
            values.broken.add((host, name))
            continue
        # a name some role defines is that role's, whatever RENAMED says (a removed name that comes back)
        if name in cluster.RENAMED and name not in known:
            new = cluster.RENAMED[name]
            records.append(record(
                host, "variable_renamed", name, None, new or "nothing", False,
                "%s is no longer a variable: %s" % (name, (
                    "it was replaced by %s (the cluster model: set it once, in group_vars/k8s_cluster%s)"
                    % (new, " or per host" if new in cluster.PER_HOST else "")) if new else
                    "it was removed (docs/development.md, the cluster model); delete it")))
            continue
        owners = _owners(name, specs, prefixes)
        spec = None
        for owner, options in owners:
            if name in options:
                spec = (owner, options[name])
                break
        if spec is None:
            if owners:
                candidates = set()
                for _owner, options in owners:
                    candidates.update(options)
                hint = _renamed(argspec.suggest(name, candidates | set(cluster.RENAMED), cutoff=0.75))
                owner = owners[0][0]
                records.append(record(
                    host, "variable_unknown", name, None, "a variable of %s" % _owner_text(owner), False,
                    "%s is not a known %s%s" % (
                        name, "cluster-wide gpuforge_* variable" if owner == "cluster-wide" else
                        "variable of role %s" % owner,
                        "; did you mean %s?" % hint if hint else " (check the spelling)"),
                ))
            elif not name.startswith("ansible_"):
                # no known prefix: a misspelt one (comon_disable_swap, kubernets_control_plane_vip)?
                target = _renamed(argspec.suggest(name, known | set(cluster.RENAMED), cutoff=0.85))
                if target:
                    records.append(record(
                        host, "variable_unknown", name, None, "a known variable", False,
                        "%s is not a variable of any role; did you mean %s? (a misspelt variable is ignored "
                        "silently)" % (name, target)))
            continue
        for check, text in argspec.validate_value(name, value, spec[1], variable_rules.CONSTRAINTS.get(name),
                                                  written=(numbers or {}).get(name)):
            shown = REDACTED if argspec.secret(name, spec[1]) else value
            if shown is REDACTED:
                text = text.replace(argspec.show(value), REDACTED)
            records.append(record(
                host, check, name, shown, argspec.expected(spec[1], variable_rules.CONSTRAINTS.get(name)), False,
                "%s%s (%s)" % (name, argspec.join(text), _owner_text(spec[0])),
            ))
            values.broken.add((host, name))
    return records


def rule_checks(host, values, specs, records):
    """The rules of every role (variable_rules.py), defaults applied. A rule that reads a variable that failed its
    own check on this host is not run (variable_rules.rule)."""
    out = []
    failed = {r["variable"] for r in records if r["host"] == host and not r["ok"]}
    merged = {}
    for options in specs.values():
        for name, spec in options.items():
            usable, value, _ = values.value(host, name)
            if usable:
                merged[name] = value
            else:
                failed.add(name)
                merged[name] = (spec or {}).get("default")
    for role in sorted(variable_rules.RULES):
        options = specs.get(role)
        if not options:
            continue
        for variable, message in variable_rules.role_variable_errors(role, merged, constraints=False, failed=failed):
            shown = REDACTED if argspec.secret(variable, (options or {}).get(variable)) else merged.get(variable)
            out.append(record(host, "variable_rule", variable, shown, "see the message", False,
                              "%s (%s)" % (message, "cluster-wide variables" if role == cluster.MODEL_ROLE
                                           else "role %s" % role)))
    return out
