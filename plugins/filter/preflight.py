# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight checks of gpuforge.cluster, as pure filters.

Every check returns a list of *records*::

    {host, check, variable, value, expected, ok, severity, message}

``severity`` is ``error`` or ``warning`` (what a failed check means), ``ok`` says
whether the check passed and ``message`` is one sentence naming the host and the
variable. The role ``gpuforge.cluster.preflight`` gathers the inputs (groups,
hostvars, facts, ``gpuforge_node`` capabilities, ``df`` output, controller time),
calls these filters and fails once with every error of every host.

Filters:

* ``preflight_load_argument_specs(roles_dir)``: ``meta/argument_specs.yml`` of every role.
* ``preflight_inventory_checks(groups, hostvars, ...)``: inventory structure and variables.
* ``preflight_host_checks(facts, host, params)``: one host, from its facts.
* ``preflight_cross_host_checks(identities)``: hostnames and node IPs unique across hosts.
* ``preflight_report(checks, ...)``: the report written to ``preflight_report_path``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.parameters import DEFAULT_TYPE_VALIDATORS

from ansible_collections.gpuforge.cluster.plugins.module_utils.variable_rules import (
    RELEASE_RE, RULES, network, role_variable_errors, split_endpoint)

ERROR = "error"
WARNING = "warning"
INVENTORY = "inventory"

CLUSTER_GROUP = "k8s_cluster"
CONTROL_PLANE_GROUP = "control_plane"
WORKERS_GROUP = "workers"
GPU_WORKERS_GROUP = "gpu_workers"
NODE_GROUPS = (CONTROL_PLANE_GROUP, WORKERS_GROUP, GPU_WORKERS_GROUP)

# Kubernetes node names are DNS-1123 subdomains: lowercase labels of [a-z0-9-],
# starting and ending with an alphanumeric character, joined by dots.
DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = re.compile(r"^%s(\.%s)*$" % (DNS1123_LABEL, DNS1123_LABEL))

# Checks that can be skipped because a parameter is invalid report under this
# name; preflight_report drops them when the inventory check already reported
# the same variable of the same host.
PARAMETER_CHECK = "parameter"

# Cluster-wide variables always carry this prefix; role variables carry <role>_.
CLUSTER_PREFIX = "gpuforge_"


# ---------------------------------------------------------------------------
# records


def record(host, check, variable, value, expected, ok, message, severity=ERROR):
    """One check result. ``message`` is prefixed with the host when it does not start with it."""
    if severity not in (ERROR, WARNING):
        raise AnsibleFilterError("severity must be error or warning, got %r" % (severity,))
    prefix = "%s: " % host
    if not message.startswith(prefix):
        message = prefix + message
    return {
        "host": host,
        "check": check,
        "variable": variable,
        "value": _plain(value),
        "expected": _plain(expected),
        "ok": bool(ok),
        "severity": severity,
        "message": message,
    }


def _plain(value):
    """Deep copy into plain Python types (lazy Ansible containers, tagged strings)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return str(value)


def _show(value):
    """A value as it would be written in YAML, for messages."""
    if isinstance(value, str):
        return "'%s'" % value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(_plain(value))


def _require_mapping(value, what):
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("%s must be a dict, got %s" % (what, type(value).__name__))
    return value


def _require_list(value, what):
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise AnsibleFilterError("%s must be a list, got %s" % (what, type(value).__name__))
    return list(value)


# ---------------------------------------------------------------------------
# argument specs


def preflight_load_argument_specs(roles_dir):
    """Options of every role under ``roles_dir``, from ``<role>/meta/argument_specs.yml``.

    Returns ``{role: {option: spec}}``, the options of all entry points of a role
    merged (an option defined by two entry points keeps the first definition).
    """
    root = Path(str(roles_dir))
    if not root.is_dir():
        raise AnsibleFilterError("preflight_load_argument_specs: %s is not a directory" % root)
    specs = {}
    for path in sorted(root.glob("*/meta/argument_specs.yml")):
        role = path.parent.parent.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleFilterError("cannot read %s: %s" % (path, exc)) from exc
        entry_points = data.get("argument_specs") if isinstance(data, Mapping) else None
        if not isinstance(entry_points, Mapping):
            raise AnsibleFilterError("%s has no argument_specs mapping" % path)
        options = {}
        for name in sorted(entry_points, key=lambda n: (n != "main", n)):
            entry = entry_points[name] or {}
            for option, spec in (entry.get("options") or {}).items():
                options.setdefault(option, spec or {})
        specs[role] = options
    return specs


def _type_name(spec):
    return (spec or {}).get("type") or "str"


def _convert(value, wanted):
    """Coerce ``value`` like Ansible's argument spec validation does (same functions)."""
    checker = DEFAULT_TYPE_VALIDATORS.get(wanted)
    if checker is None:
        raise AnsibleFilterError("unsupported argument spec type %r" % (wanted,))
    return checker(value)


def validate_value(name, value, spec, constraint=None):
    """Problems of one value against one argument spec option.

    Returns a list of ``(check, text)`` tuples; ``text`` continues a sentence that
    starts with the variable name, e.g. ``"'maybe' is not a valid bool"``.
    """
    spec = spec or {}
    problems = []
    if value is None and not spec.get("required") and spec.get("default") is None:
        return problems
    wanted = _type_name(spec)
    try:
        converted = _convert(value, wanted)
    except (TypeError, ValueError):
        return [("variable_type", "%s is not a valid %s" % (_show(value), wanted))]

    elements = spec.get("elements")
    if elements and isinstance(converted, list):
        converted_elements = []
        for index, item in enumerate(converted):
            try:
                item = _convert(item, elements)
            except (TypeError, ValueError):
                problems.append(("variable_type", "[%d] %s is not a valid %s" % (index, _show(item), elements)))
                continue
            if elements == "dict" and spec.get("options"):
                problems.extend(_validate_suboptions("[%d]" % index, item, spec["options"]))
            converted_elements.append(item)
        converted = converted_elements
    elif wanted == "dict" and spec.get("options") and isinstance(converted, Mapping):
        problems.extend(_validate_suboptions("", converted, spec["options"]))

    choices = spec.get("choices")
    if choices and not problems:
        values = converted if isinstance(converted, list) else [converted]
        bad = [v for v in values if v not in choices]
        if bad:
            problems.append((
                "variable_choice",
                "%s is not one of the allowed values (%s)" % (
                    ", ".join(_show(v) for v in bad) if isinstance(converted, list) else _show(value),
                    ", ".join(str(c) for c in choices)),
            ))

    if constraint and not problems:
        problems.extend(_check_constraint(converted, constraint, value))
    return problems


def _validate_suboptions(path, value, options):
    """Problems of a dict against sub-options; texts start with ``path`` (``[0]``, ``.key``)."""
    problems = []
    if not isinstance(value, Mapping):
        return [("variable_type", _at(path, "%s is not a valid dict" % _show(value)))]
    for key in value:
        if key not in options:
            hint = _closest(str(key), options)
            problems.append((
                "variable_unknown",
                _at(path, "has an unknown key %s%s" % (key, "; did you mean %s?" % hint if hint else "")),
            ))
    for key, subspec in options.items():
        if key not in value:
            if (subspec or {}).get("required"):
                problems.append(("variable_required", _at(path, "is missing the required key %s" % key)))
            continue
        for check, text in validate_value(key, value[key], subspec):
            problems.append((check, "%s.%s%s" % (path, key, _join(text))))
    return problems


def _at(path, rest):
    return "%s %s" % (path, rest) if path else rest


def _join(text):
    """Continue a variable name with a problem text: ``x`` + ``[0].y ...`` or ``x`` + `` 'v' is ...``."""
    return text if text[:1] in ("[", ".") else " " + text


def _check_constraint(value, constraint, original=None):
    problems = []
    minimum = constraint.get("min")
    maximum = constraint.get("max")
    shown = _show(value if original is None else original)
    if minimum is not None and isinstance(value, (int, float)) and value < minimum:
        problems.append(("variable_range", "%s is below the minimum %s" % (shown, minimum)))
    if maximum is not None and isinstance(value, (int, float)) and value > maximum:
        problems.append(("variable_range", "%s is above the maximum %s" % (shown, maximum)))
    fmt = constraint.get("format")
    if fmt == "ip" and value not in (None, ""):
        try:
            ipaddress.ip_address(str(value))
        except ValueError:
            problems.append(("variable_format", "%s is not an IP address" % _show(value)))
    elif fmt == "version" and value not in (None, ""):
        if _version_tuple(value) is None:
            problems.append(("variable_format", "%s is not a version such as '3.8'" % _show(value)))
    elif fmt == "absolute_path" and not str(value).startswith("/"):
        problems.append(("variable_format", "%s is not an absolute path" % _show(value)))
    return problems


def _closest(name, candidates):
    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _version_tuple(value):
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(value))
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


# ---------------------------------------------------------------------------
# inventory checks


def _host_vars(hostvars, host):
    try:
        return hostvars[host]
    except KeyError:
        return {}


def _get(host_vars, name, default=None):
    """A (templated) host variable; returns (value, error text or None)."""
    try:
        if name not in host_vars:
            return default, None
        return host_vars[name], None
    except Exception as exc:  # noqa: BLE001 - templating errors of any kind are reported, not raised
        return default, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _fact_names(host_vars):
    try:
        facts = host_vars.get("ansible_facts") or {}
        return set(facts.keys()) if isinstance(facts, Mapping) else set()
    except Exception:  # noqa: BLE001 - a broken fact cache entry only means no fact names to skip
        return set()


def preflight_inventory_checks(groups, hostvars, argument_specs=None, cluster_spec=None,
                               constraints=None, required_groups=None):
    """Checks of the inventory as a whole and of every cluster host's variables, and (when
    ``argument_specs`` has the kubernetes_control_plane role) of the Kubernetes layer across hosts and
    roles: see ``_kubernetes_checks``.

    groups: the ``groups`` magic variable. hostvars: the ``hostvars`` magic variable
    (or ``{host: {var: value}}``). argument_specs: ``{role: {option: spec}}``
    (preflight_load_argument_specs). cluster_spec: ``{gpuforge_var: spec}``.
    constraints: ``{var: {min, max, format}}`` checked after the type.
    required_groups: groups that must exist and have hosts (k8s_cluster always does).
    """
    groups = _require_mapping(groups, "groups")
    hostvars = _require_mapping(hostvars, "hostvars")
    argument_specs = _require_mapping(argument_specs or {}, "argument_specs")
    cluster_spec = _require_mapping(cluster_spec or {}, "cluster_spec")
    constraints = _require_mapping(constraints or {}, "constraints")
    records = []
    if required_groups is None:
        required_groups = [CONTROL_PLANE_GROUP]
    elif isinstance(required_groups, str):
        required_groups = [g.strip() for g in required_groups.split(",") if g.strip()]
    elif (isinstance(required_groups, Sequence) and not isinstance(required_groups, bytes)
          and all(isinstance(g, str) for g in required_groups)):
        required_groups = list(required_groups)
    else:
        records.append(record(
            INVENTORY, "variable_type", "preflight_required_groups", required_groups, "list of str", False,
            "preflight_required_groups %s is not a list of group names; checking the default (control_plane)"
            % _show(required_groups),
        ))
        required_groups = [CONTROL_PLANE_GROUP]

    records.extend(_group_checks(groups, required_groups))
    hosts = _cluster_hosts(groups)
    records.extend(_membership_checks(groups, hosts))
    records.extend(_name_checks(hosts))
    records.extend(_address_checks(hosts, hostvars))
    for host in hosts:
        records.extend(_variable_checks(host, _host_vars(hostvars, host), argument_specs, cluster_spec, constraints))
    records.extend(_kubernetes_checks(groups, hosts, hostvars, argument_specs, records))
    return records


def _cluster_hosts(groups):
    """Hosts of k8s_cluster and of the node groups, in inventory order, once each."""
    hosts = []
    for group in (CLUSTER_GROUP,) + NODE_GROUPS:
        for host in groups.get(group) or []:
            if host not in hosts:
                hosts.append(host)
    return hosts


def _group_checks(groups, required_groups):
    records = []
    wanted = [CLUSTER_GROUP] + [g for g in required_groups if g != CLUSTER_GROUP]
    for group in wanted:
        variable = "preflight_required_groups" if group != CLUSTER_GROUP else "groups['%s']" % group
        if group not in groups:
            records.append(record(
                INVENTORY, "group_defined", variable, None, "a group with hosts", False,
                "group %s is not defined; %s" % (group, _group_hint(group, required_groups)),
            ))
            continue
        members = list(groups.get(group) or [])
        records.append(record(
            INVENTORY, "group_not_empty", variable, len(members), ">= 1 host", bool(members),
            "group %s has %d host(s)" % (group, len(members)) if members else
            "group %s has no hosts; %s" % (group, _group_hint(group, required_groups)),
        ))
    if CONTROL_PLANE_GROUP in groups:
        members = list(groups.get(CONTROL_PLANE_GROUP) or [])
        if members:
            odd = len(members) % 2 == 1
            records.append(record(
                INVENTORY, "control_plane_odd", "groups['%s']" % CONTROL_PLANE_GROUP, len(members), "an odd number", odd,
                "group control_plane has %d host(s), an odd number as etcd quorum needs" % len(members) if odd else
                "group control_plane has %d hosts (%s); etcd needs an odd number (1, 3, 5) of control-plane nodes "
                "for quorum" % (len(members), ", ".join(members)),
            ))
    return records


def _group_hint(group, required_groups):
    if group == CLUSTER_GROUP:
        return "every cluster host must be in k8s_cluster (children control_plane and workers)"
    return "preflight_required_groups (%s) lists it as required" % ", ".join(required_groups)


def _membership_checks(groups, hosts):
    records = []
    cluster = set(groups.get(CLUSTER_GROUP) or [])
    workers = set(groups.get(WORKERS_GROUP) or [])
    for host in hosts:
        outside = [g for g in NODE_GROUPS if host in (groups.get(g) or []) and host not in cluster]
        records.append(record(
            host, "host_in_cluster", "groups['%s']" % CLUSTER_GROUP, host in cluster, True, not outside,
            "host is in k8s_cluster" if not outside else
            "host is in group %s but not in k8s_cluster; make %s a child of k8s_cluster" % (
                ", ".join(outside), outside[0]),
        ))
        if host in (groups.get(GPU_WORKERS_GROUP) or []):
            records.append(record(
                host, "gpu_worker_in_workers", "groups['%s']" % WORKERS_GROUP, host in workers, True, host in workers,
                "GPU worker is in workers" if host in workers else
                "host is in gpu_workers but not in workers; make gpu_workers a child of workers",
            ))
    return records


def _name_checks(hosts):
    records = []
    seen = {}
    for host in hosts:
        name = str(host)
        labels_ok = all(len(label) <= 63 for label in name.split("."))
        valid = bool(DNS1123_SUBDOMAIN.match(name)) and len(name) <= 253 and labels_ok
        if valid:
            text = "node name %s is a valid DNS-1123 name" % name
        else:
            reasons = []
            if name != name.lower():
                reasons.append("has uppercase letters")
            if re.search(r"[^A-Za-z0-9.-]", name):
                reasons.append("has characters other than a-z, 0-9, '-' and '.'")
            if re.search(r"(^[-.])|([-.]$)|(\.\.)|(-\.)|(\.-)", name):
                reasons.append("has a label that does not start and end with a letter or digit")
            if len(name) > 253 or not labels_ok:
                reasons.append("is too long")
            text = "node name %s (inventory_hostname) is not a valid DNS-1123 name: it %s; Kubernetes node names " \
                   "must be lowercase letters, digits, '-' and '.'" % (name, " and ".join(reasons) or "is malformed")
        records.append(record(host, "node_name", "inventory_hostname", name, "DNS-1123 subdomain", valid, text))
        seen.setdefault(name.lower(), []).append(name)
    for names in seen.values():
        for name, others in _sharing(names):
            records.append(record(
                name, "node_name_unique", "inventory_hostname", name, "unique", False,
                "node name %s is the same as %s when case is ignored; node names must be unique" % (
                    name, ", ".join(others)),
            ))
    return records


def _sharing(names):
    """(name, the other names) for each name of a group that holds more than one."""
    if len(names) < 2:
        return []
    return [(name, [n for n in names if n != name]) for name in names]


def _address_checks(hosts, hostvars):
    records = []
    by_address = {}
    by_node_ip = {}
    for host in hosts:
        host_vars = _host_vars(hostvars, host)
        address, _ = _get(host_vars, "ansible_host", host)
        port, _ = _get(host_vars, "ansible_port", None)
        key = (str(address).lower(), "" if port in (None, "") else str(port))
        by_address.setdefault(key, []).append(host)
        node_ip, _ = _get(host_vars, "gpuforge_node_ip", None)
        if node_ip not in (None, ""):
            by_node_ip.setdefault(str(node_ip), []).append(host)
    for (address, port), names in by_address.items():
        for host in names:
            others = [n for n in names if n != host]
            shown = address + (":" + port if port else "")
            records.append(record(
                host, "ansible_host_unique", "ansible_host", shown, "unique", not others,
                "ansible_host %s is not shared with another host" % shown if not others else
                "ansible_host %s is also the address of %s; two inventory names for one machine" % (
                    shown, ", ".join(others)),
            ))
    for node_ip, names in by_node_ip.items():
        for host, others in _sharing(names):
            records.append(record(
                host, "node_ip_unique", "gpuforge_node_ip", node_ip, "unique", False,
                "gpuforge_node_ip %s is also set for %s; every node needs its own IP" % (node_ip, ", ".join(others)),
            ))
    return records


def _variable_checks(host, host_vars, argument_specs, cluster_spec, constraints):
    records = []
    prefixes = sorted(((role + "_", role) for role in argument_specs), key=lambda p: -len(p[0]))
    facts = _fact_names(host_vars)
    try:
        names = sorted(str(n) for n in host_vars.keys())
    except Exception as exc:  # noqa: BLE001 - report instead of crashing the whole check
        raise AnsibleFilterError("cannot list the variables of %s: %s" % (host, exc)) from exc
    checked = 0
    for name in names:
        if name in facts:
            continue
        if name.startswith(CLUSTER_PREFIX):
            owners = [("cluster-wide", cluster_spec)]
        else:
            owners = [(role, argument_specs[role]) for prefix, role in prefixes if name.startswith(prefix)]
        if not owners:
            continue
        spec = None
        for owner, options in owners:
            if name in options:
                spec = (owner, options[name])
                break
        if spec is None:
            candidates = set()
            for _owner, options in owners:
                candidates.update(options)
            hint = _closest(name, candidates)
            owner = owners[0][0]
            records.append(record(
                host, "variable_unknown", name, None, "a variable of %s" % _owner_text(owner), False,
                "%s is not a known %s%s" % (
                    name, "cluster-wide gpuforge_* variable" if owner == "cluster-wide" else "variable of role %s" % owner,
                    "; did you mean %s?" % hint if hint else " (check the spelling)"),
            ))
            continue
        checked += 1
        value, error = _get(host_vars, name)
        if error is not None:
            records.append(record(
                host, "variable_template", name, None, "a value", False,
                "%s cannot be evaluated: %s" % (name, error),
            ))
            continue
        for check, text in validate_value(name, value, spec[1], constraints.get(name)):
            records.append(record(
                host, check, name, value, _expected(spec[1], constraints.get(name)), False,
                "%s%s (%s)" % (name, _join(text), _owner_text(spec[0])),
            ))
    records.extend(_rule_checks(host, host_vars, argument_specs, records))
    if not any(r["host"] == host and not r["ok"] for r in records):
        records.append(record(
            host, "variables", "*", checked, "valid", True,
            "%d role and cluster variable(s) set for this host match their argument specs" % checked,
        ))
    return records


def _rule_checks(host, host_vars, argument_specs, records):
    """The rules between a role's variables (module_utils/variable_rules.py), defaults applied.

    A role whose variables already failed their own checks for this host is not judged again."""
    out = []
    failed = {r["variable"] for r in records if r["host"] == host and not r["ok"]}
    for role in sorted(RULES):
        options = argument_specs.get(role)
        if not options or failed & set(options):
            continue
        values = {}
        for name, spec in options.items():
            value, error = _get(host_vars, name, spec.get("default"))
            if error is not None:
                break
            values[name] = value
        else:
            for variable, message in role_variable_errors(role, values):
                out.append(record(host, "variable_rule", variable, values.get(variable), "see the message", False,
                                  "%s (role %s)" % (message, role)))
    return out


def _owner_text(owner):
    return "cluster-wide variable" if owner == "cluster-wide" else "role %s" % owner


def _expected(spec, constraint):
    text = _type_name(spec)
    if spec.get("elements"):
        text = "list of %s" % spec["elements"]
    if spec.get("choices"):
        text += " in [%s]" % ", ".join(str(c) for c in spec["choices"])
    for key in ("min", "max", "format"):
        if constraint and constraint.get(key) is not None:
            text += ", %s %s" % (key, constraint[key])
    return text


# ---------------------------------------------------------------------------
# Kubernetes layer: checks across hosts and roles


K8S_CP_ROLE = "kubernetes_control_plane"
K8S_NODE_ROLE = "kubernetes_node"
CNI_ROLE = "cni"
K8S_CP = K8S_CP_ROLE + "_"
# Variables kubeadm init takes once for the whole cluster: every host must see the same value.
K8S_CLUSTER_VARIABLES = tuple(K8S_CP + name for name in (
    "version", "cluster_name", "pod_subnet", "service_subnet", "dns_domain", "api_port", "ha_mode", "endpoint",
    "vip"))
# The Kubernetes version skew policy: a kubelet may be up to this many minors older than the API server.
KUBELET_MAX_MINORS_OLDER = 3
# How many hosts a message lists before "and N more".
HOSTS_SHOWN = 6


def _hosts_text(names):
    names = list(names)
    if len(names) <= HOSTS_SHOWN:
        return ", ".join(names)
    return "%s and %d more" % (", ".join(names[:HOSTS_SHOWN]), len(names) - HOSTS_SHOWN)


def _release(value):
    """(major, minor, patch) of an X.Y.Z release, or None."""
    text = str(value or "")
    return tuple(int(p) for p in text.split(".")) if RELEASE_RE.match(text) else None


def _ip(value):
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None


class _Settings(object):
    """Variables of the cluster hosts as the roles see them: the role default when a host does not set one.

    A variable that failed its own check on a host (type, choice, format, template) is unusable there:
    ``value`` returns ``(False, None, set_here)`` and the checks that need it skip that host."""

    def __init__(self, hostvars, argument_specs, records):
        self.hostvars = hostvars
        self.specs = {}
        for options in argument_specs.values():
            for name, spec in (options or {}).items():
                self.specs.setdefault(name, spec or {})
        self.failed = {(r["host"], r["variable"]) for r in records if not r["ok"] and r["severity"] == ERROR}
        self.broken = {(r["host"], r["variable"]) for r in records
                       if not r["ok"] and str(r["check"]).startswith("variable_") and r["check"] != "variable_rule"}

    def value(self, host, name):
        """(usable, value, set_here)."""
        host_vars = _host_vars(self.hostvars, host)
        spec = self.specs.get(name) or {}
        try:
            set_here = name in host_vars
        except Exception:  # noqa: BLE001 - unusable hostvars are reported by the variable checks
            return False, None, False
        value, error = _get(host_vars, name, spec.get("default"))
        if error is not None or (host, name) in self.broken:
            return False, None, set_here
        if value is not None and spec:
            try:
                value = _convert(value, _type_name(spec))
            except (TypeError, ValueError):
                return False, None, set_here
        return True, _plain(value), set_here


def _kubernetes_checks(groups, hosts, hostvars, argument_specs, records):
    """Checks of the Kubernetes layer that span hosts or roles (module_utils/variable_rules.py has the
    rules of one host's variables): cluster-wide variables the same everywhere, node addresses outside the
    pod and service subnets, an API endpoint the nodes can reach, kubeadm and kubelet versions within the
    skew policy, cni_pod_subnet the same as the cluster's. Role defaults apply where a host sets nothing.
    Runs only when the kubernetes_control_plane role is in ``argument_specs``."""
    cp_options = argument_specs.get(K8S_CP_ROLE)
    if not cp_options or not hosts:
        return []
    settings = _Settings(hostvars, argument_specs, records)
    control_planes = [h for h in (groups.get(CONTROL_PLANE_GROUP) or []) if h in hosts]
    reference = control_planes[0] if control_planes else hosts[0]
    what = "the first control plane %s" % reference if control_planes else \
        "%s (the first host of k8s_cluster; group control_plane has none)" % reference
    out = []
    out.extend(_consistency_checks(hosts, reference, what, settings, cp_options))
    cluster = {}
    for name in K8S_CLUSTER_VARIABLES:
        usable, value, _ = settings.value(reference, name)
        cluster[name] = value if usable else None
    addresses = {host: _node_addresses(host, host in control_planes, settings, argument_specs) for host in hosts}
    out.extend(_subnet_checks(hosts, addresses, cluster))
    reported = any((reference, K8S_CP + n) in settings.failed for n in ("ha_mode", "endpoint", "vip", "api_port"))
    out.extend(_endpoint_checks(hosts, control_planes, reference, addresses, cluster, reported))
    if K8S_NODE_ROLE in argument_specs:
        out.extend(_version_skew_checks(hosts, control_planes, settings, cluster))
    cni_options = argument_specs.get(CNI_ROLE) or {}
    if "cni_pod_subnet" in cni_options:
        out.extend(_cni_checks(hosts, settings, cluster))
    return out


def _consistency_checks(hosts, reference, what, settings, cp_options):
    out = []
    names = [n for n in K8S_CLUSTER_VARIABLES if n in cp_options]
    for name in names:
        usable, wanted, _ = settings.value(reference, name)
        if not usable:
            continue
        holders = {}  # shown value: hosts, the reference's value first
        differing = []
        for host in [reference] + [h for h in hosts if h != reference]:
            usable, value, set_here = settings.value(host, name)
            if not usable:
                continue
            holders.setdefault(_show(value), []).append(host)
            if value != wanted:
                differing.append((host, value, set_here))
        if not differing:
            continue
        listing = "; ".join("%s on %s" % (shown, _hosts_text(names_)) for shown, names_ in holders.items())
        for host, value, set_here in differing:
            out.append(record(
                host, "kubernetes_consistent", name, value, wanted, False,
                "%s is %s%s but %s on %s (values: %s); kubeadm sets the cluster up once, so every host of "
                "k8s_cluster must see the same value: set %s once in group_vars/k8s_cluster, not per host or "
                "per group" % (
                    name, _show(value), " (the role default: not set for this host)" if not set_here else "",
                    _show(wanted), what, listing, name),
            ))
    if not out:
        out.append(record(
            INVENTORY, "kubernetes_consistent", K8S_CP + "*", len(hosts), "the same on every host", True,
            "the cluster-wide variables %s are the same on all %d host(s) of k8s_cluster" % (
                ", ".join(names), len(hosts)),
        ))
    return out


def _node_addresses(host, is_control_plane, settings, argument_specs):
    """[(address, [variables])] of the IP addresses of a host that the inventory names."""
    names = ["gpuforge_node_ip"]
    if K8S_NODE_ROLE in argument_specs:
        names.append("kubernetes_node_ip")
    if is_control_plane:
        names.append(K8S_CP + "advertise_address")
    found = []
    for name in names:
        usable, value, _ = settings.value(host, name)
        address = _ip(value) if usable and value not in (None, "") else None
        if address is not None:
            found.append((address, name))
    ansible_host, error = _get(_host_vars(settings.hostvars, host), "ansible_host", None)
    address = _ip(ansible_host) if error is None and ansible_host not in (None, "") else None
    if address is not None:
        found.append((address, "ansible_host"))
    merged = []
    for address, name in found:
        for entry in merged:
            if entry[0] == address:
                entry[1].append(name)
                break
        else:
            merged.append((address, [name]))
    return merged


def _subnet_checks(hosts, addresses, cluster):
    subnets = []
    for name in (K8S_CP + "pod_subnet", K8S_CP + "service_subnet"):
        net = network(cluster.get(name)) if cluster.get(name) else None
        if net is not None:
            subnets.append((name, net))
    if not subnets:
        return []
    why = {
        K8S_CP + "pod_subnet": "the CNI routes the pod subnet to pods, so traffic to this node would go astray",
        K8S_CP + "service_subnet": "kube-proxy captures the service subnet, so traffic to this node would be "
                                   "taken for service traffic",
    }
    out = []
    for host in hosts:
        if not addresses[host]:
            continue
        failed = False
        for address, names in addresses[host]:
            for subnet_name, net in subnets:
                if address.version == net.version and address in net:
                    failed = True
                    out.append(record(
                        host, "node_address_subnet", names[0], str(address), "outside %s" % net, False,
                        "%s %s is inside %s %s: %s; choose a %s (in group_vars/k8s_cluster) that no node address "
                        "falls in" % (" and ".join(names), address, subnet_name, net, why[subnet_name], subnet_name),
                    ))
        if not failed:
            out.append(record(
                host, "node_address_subnet", addresses[host][0][1][0],
                [str(a) for a, _ in addresses[host]], "outside the pod and service subnets", True,
                "node address(es) %s are outside %s" % (
                    ", ".join("%s (%s)" % (a, ", ".join(n)) for a, n in addresses[host]),
                    " and ".join("%s %s" % (name, net) for name, net in subnets)),
            ))
    return out


def _endpoint_checks(hosts, control_planes, reference, addresses, cluster, reported=False):
    """reported: the rule checks already failed a variable of the endpoint (no passed record then)."""
    mode = cluster.get(K8S_CP + "ha_mode")
    if mode is None:
        return []
    endpoint = cluster.get(K8S_CP + "endpoint") or ""
    vip = _ip(cluster.get(K8S_CP + "vip")) if cluster.get(K8S_CP + "vip") else None
    port = cluster.get(K8S_CP + "api_port")
    port = port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else 6443
    out = []

    if len(control_planes) > 1 and mode == "none" and not endpoint:
        for host in control_planes[1:]:
            out.append(record(
                host, "api_endpoint", K8S_CP + "ha_mode", mode, "kube_vip or external", False,
                "group control_plane has %d hosts (%s) but %sha_mode is 'none' and %sendpoint is empty: the "
                "control planes that join (%s) need an API endpoint they all share; set %sha_mode to kube_vip "
                "(with %svip and %skube_vip_image) or external (with %sendpoint, the load balancer) in "
                "group_vars/k8s_cluster" % (
                    len(control_planes), _hosts_text(control_planes), K8S_CP, K8S_CP,
                    _hosts_text(control_planes[1:]), K8S_CP, K8S_CP, K8S_CP, K8S_CP),
            ))

    if mode == "kube_vip" and vip is not None:
        for host in hosts:
            for address, names in addresses[host]:
                if address == vip:
                    out.append(record(
                        host, "api_endpoint", K8S_CP + "vip", str(vip), "an unused address", False,
                        "%svip %s is the address of this host (%s): kube-vip would take over the node's own "
                        "address; choose an unused IP address of the control planes' subnet for %svip" % (
                            K8S_CP, vip, ", ".join(names), K8S_CP),
                    ))

    endpoint_host, endpoint_port = None, port
    if endpoint:
        try:
            endpoint_host, endpoint_port = split_endpoint(endpoint, port)
        except ValueError:
            endpoint_host = None  # the rule check reported it
    endpoint_ip = _ip(endpoint_host) if endpoint_host else None
    if endpoint_ip is not None:
        cp_addresses = {}
        for host in control_planes:
            for address, _ in addresses[host]:
                cp_addresses.setdefault(address, host)
        owner = cp_addresses.get(endpoint_ip)
        if mode == "external":
            if owner is not None and endpoint_port == port:
                out.append(record(
                    reference, "api_endpoint", K8S_CP + "endpoint", endpoint, "a load balancer", False,
                    "%sendpoint %s (ha_mode external: the load balancer) is the address of control plane %s on "
                    "%sapi_port %d, where its own API server listens: the nodes would reach %s only, not a load "
                    "balancer, and lose the API when it is down; set %sendpoint to the load balancer" % (
                        K8S_CP, endpoint, owner, K8S_CP, port, owner, K8S_CP),
                    WARNING,
                ))
        elif endpoint_ip != vip and owner is None:
            known = all(addresses[h] for h in control_planes) and control_planes
            # kube_vip with a valid VIP: the rule check already reports an endpoint that is not the VIP
            covered = mode == "kube_vip" and vip is not None
            if known and not covered:
                where = ", ".join("%s %s" % (h, "/".join(str(a) for a, _ in addresses[h])) for h in control_planes)
                if mode == "none":
                    out.append(record(
                        reference, "api_endpoint", K8S_CP + "endpoint", endpoint, "a control plane's address",
                        False,
                        "%sendpoint %s is not the address of a control plane (%s) and %sha_mode is none, so no "
                        "load balancer or VIP holds it: nothing would answer there; leave %sendpoint empty (the "
                        "first control plane's address) or set it to a control plane's address, or set %sha_mode "
                        "external when a load balancer answers at %s" % (
                            K8S_CP, endpoint, where, K8S_CP, K8S_CP, K8S_CP, endpoint),
                    ))
                else:
                    out.append(record(
                        reference, "api_endpoint", K8S_CP + "endpoint", endpoint, "the VIP", False,
                        "%sendpoint %s is neither the VIP nor the address of a control plane (%s): nothing may "
                        "answer there; leave %sendpoint empty (the VIP)" % (K8S_CP, endpoint, where, K8S_CP),
                        WARNING,
                    ))
    if not out and not reported:
        if endpoint:
            shown = endpoint
        elif mode == "kube_vip":
            shown = "the VIP %s" % (vip or "?")
        else:
            shown = "the address of %s" % reference
        out.append(record(
            INVENTORY, "api_endpoint", K8S_CP + "endpoint", endpoint, "an endpoint the nodes reach", True,
            "the nodes reach the API at %s (%sha_mode %s, %d control plane(s))" % (
                shown, K8S_CP, mode, len(control_planes)),
        ))
    return out


def _version_skew_checks(hosts, control_planes, settings, cluster):
    wanted_text = cluster.get(K8S_CP + "version")
    wanted = _release(wanted_text)
    if wanted is None:
        return []
    minor = "%d.%d" % wanted[:2]
    oldest = "%d.%d" % (wanted[0], max(wanted[1] - KUBELET_MAX_MINORS_OLDER, 0))
    name = "kubernetes_node_version"
    out = []
    for host in hosts:
        usable, text, _ = settings.value(host, name)
        have = _release(text) if usable else None
        if have is None:
            continue  # the rule check reported it
        if host in control_planes:
            ok = have[:2] == wanted[:2] and have[2] >= wanted[2]
            if ok:
                message = "kubeadm and kubelet %s (%s) deploy and run %sversion %s" % (text, name, K8S_CP, wanted_text)
            elif have[:2] != wanted[:2]:
                message = ("%s %s (kubeadm and kubelet of this control plane) is not a %s release like %sversion %s: "
                           "kubeadm sets up the control plane of its own minor only; set %s to %s (or a newer %s "
                           "patch) on the control planes" % (name, text, minor, K8S_CP, wanted_text, name,
                                                              wanted_text, minor))
            else:
                message = ("%s %s (kubeadm of this control plane) is older than %sversion %s: kubeadm cannot deploy "
                           "a control plane newer than itself; set %s to %s (or a newer %s patch) on the control "
                           "planes" % (name, text, K8S_CP, wanted_text, name, wanted_text, minor))
            out.append(record(host, "kubernetes_version_skew", name, text, "%s.Z, Z >= %d" % (minor, wanted[2]), ok,
                              message))
            continue
        behind = wanted[1] - have[1] if have[0] == wanted[0] else None
        ok = behind is not None and 0 <= behind <= KUBELET_MAX_MINORS_OLDER
        if ok:
            message = "kubelet %s (%s) is within the version skew policy of %sversion %s" % (
                text, name, K8S_CP, wanted_text)
        elif behind is None:
            message = "%s %s (the kubelet) is not a %d.x release like %sversion %s; set %s to a release from %s " \
                      "to %s" % (name, text, wanted[0], K8S_CP, wanted_text, name, oldest, minor)
        elif behind < 0:
            message = ("%s %s (the kubelet) is newer than %sversion %s: a kubelet must not be newer than the API "
                       "server (Kubernetes version skew policy); set %s to a %s release or older (down to %s)" % (
                           name, text, K8S_CP, wanted_text, name, minor, oldest))
        else:
            message = ("%s %s (the kubelet) is %d minor versions older than %sversion %s: the Kubernetes version "
                       "skew policy allows a kubelet at most %d minors older than the API server; set %s to a "
                       "release from %s to %s" % (name, text, behind, K8S_CP, wanted_text,
                                                 KUBELET_MAX_MINORS_OLDER, name, oldest, minor))
        out.append(record(host, "kubernetes_version_skew", name, text, "%s to %s" % (oldest, minor), ok, message))
    return out


def _cni_checks(hosts, settings, cluster):
    pod_subnet = cluster.get(K8S_CP + "pod_subnet")
    if not pod_subnet:
        return []
    wanted = network(pod_subnet)
    out = []
    for host in hosts:
        usable, value, _ = settings.value(host, "cni_pod_subnet")
        if not usable or value in (None, "") or settings.value(host, "cni_plugin")[1] == "none":
            continue
        net = network(value)
        ok = net == wanted if net is not None and wanted is not None else str(value) == str(pod_subnet)
        out.append(record(
            host, "cni_pod_subnet", "cni_pod_subnet", value, pod_subnet, ok,
            "cni_pod_subnet %s is %spod_subnet" % (value, K8S_CP) if ok else
            "cni_pod_subnet %s is not %spod_subnet %s: the CNI would give pods addresses outside the pod subnet "
            "the cluster allocates node pod ranges from; set cni_pod_subnet to %s, or leave it empty and the cni "
            "role reads the cluster's" % (value, K8S_CP, pod_subnet, pod_subnet),
        ))
    return out


# ---------------------------------------------------------------------------
# host checks


def _param(params, name, wanted, host, check, default=None, constraint=None):
    """A coerced role parameter, or (None, record) when it is unusable."""
    value = params.get(name, default)
    problems = validate_value(name, value, {"type": wanted}, constraint)
    if problems or value is None:
        text = problems[0][1] if problems else "is not set"
        return None, record(host, PARAMETER_CHECK, name, value, wanted, False,
                            "%s %s; the %s check cannot run" % (name, text, check))
    return _convert(value, wanted), None


def preflight_host_checks(facts, host, params=None):
    """Checks of one host from its freshly gathered facts.

    facts: ``ansible_facts`` of the host. params keys (all optional except where a
    check needs them): is_control_plane, capabilities (``gpuforge_node``), df
    (``{rc, stdout, stderr}`` of ``df -P -k PATH``), clock_before / clock_after
    (controller epoch seconds bracketing fact gathering), node_ip (effective node
    IP), node_ip_set (whether gpuforge_node_ip was given), the ``preflight_*``
    variables and common_disable_swap. With ``unreachable`` (a reason) set, the
    only record is a failed ``reachable`` check and ``facts`` are not read.
    """
    params = _require_mapping(params or {}, "params")
    host = str(host)
    if params.get("unreachable"):
        reason = (str(params["unreachable"]).strip().splitlines() or ["?"])[0]
        if len(reason) > 200:
            reason = reason[:197] + "..."
        return [record(host, "reachable", "ansible_host", None, "reachable", False,
                       "host is unreachable or its facts could not be gathered: %s" % reason)]
    facts = _require_mapping(facts, "facts")
    if not facts.get("distribution") and not facts.get("architecture"):
        raise AnsibleFilterError("preflight_host_checks: %s has no gathered facts (distribution, architecture)" % host)
    caps = params.get("capabilities") or {}
    if not isinstance(caps, Mapping):
        raise AnsibleFilterError("preflight_host_checks: capabilities of %s must be a dict" % host)
    checks = []
    checks.extend(_os_check(facts, host, params))
    checks.extend(_arch_check(facts, host, params))
    checks.extend(_cpu_check(facts, host, params))
    checks.extend(_memory_check(facts, host, params))
    checks.extend(_disk_check(host, params))
    checks.extend(_swap_check(facts, host, params, caps))
    checks.extend(_cgroup_check(host, params, caps))
    checks.extend(_clock_check(facts, host, params, caps))
    checks.extend(_python_check(facts, host, params))
    checks.extend(_node_ip_check(facts, host, params))
    checks.extend(_gpu_checks(host, params))
    return checks


def _os_check(facts, host, params):
    supported, bad = _param(params, "preflight_supported_os", "dict", host, "operating system")
    if bad:
        return [bad]
    dist = str(facts.get("distribution") or "unknown")
    version = str(facts.get("distribution_version") or "")
    major = str(facts.get("distribution_major_version") or version.split(".")[0])
    allowed = [str(v) for v in (supported.get(dist) or [])]
    ok = version in allowed or major in allowed
    shown = "%s %s" % (dist, version or major)
    listing = "; ".join("%s %s" % (d, ", ".join(str(v) for v in vs or [])) for d, vs in supported.items())
    return [record(
        host, "os", "preflight_supported_os", shown, listing, ok,
        "operating system %s is supported (preflight_supported_os)" % shown if ok else
        "operating system %s is not in preflight_supported_os (%s)" % (shown, listing),
    )]


def _arch_check(facts, host, params):
    allowed, bad = _param(params, "preflight_supported_architectures", "list", host, "architecture")
    if bad:
        return [bad]
    arch = str(facts.get("architecture") or "unknown")
    ok = arch in [str(a) for a in allowed]
    return [record(
        host, "architecture", "preflight_supported_architectures", arch, allowed, ok,
        "architecture %s is in preflight_supported_architectures" % arch if ok else
        "architecture %s is not in preflight_supported_architectures (%s)" % (arch, ", ".join(allowed)),
    )]


def _cpu_check(facts, host, params):
    control_plane = bool(params.get("is_control_plane"))
    name = "preflight_min_cpus_control_plane" if control_plane else "preflight_min_cpus_worker"
    minimum, bad = _param(params, name, "int", host, "CPU", constraint={"min": 0})
    if bad:
        return [bad]
    count = facts.get("processor_nproc") or facts.get("processor_vcpus") or 0
    count = int(count)
    ok = count >= minimum
    return [record(
        host, "cpus", name, count, ">= %d" % minimum, ok,
        "%d CPUs meet %s (%d)" % (count, name, minimum) if ok else
        "%d CPUs is below %s (%d)" % (count, name, minimum),
    )]


def _memory_check(facts, host, params):
    minimum, bad = _param(params, "preflight_min_memory_mib", "int", host, "memory", constraint={"min": 0})
    if bad:
        return [bad]
    memory = int(facts.get("memtotal_mb") or 0)
    ok = memory >= minimum
    return [record(
        host, "memory", "preflight_min_memory_mib", memory, ">= %d" % minimum, ok,
        "memory %d MiB meets preflight_min_memory_mib (%d)" % (memory, minimum) if ok else
        "memory %d MiB is below preflight_min_memory_mib (%d)" % (memory, minimum),
    )]


def parse_df(stdout):
    """(available KiB, mount point) from ``df -P -k PATH`` output, or None."""
    lines = [line for line in (stdout or "").splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    for index, field in enumerate(fields):
        if field.endswith("%") and index >= 3:
            try:
                return int(fields[index - 1]), " ".join(fields[index + 1:]) or "?"
            except ValueError:
                return None
    return None


def _disk_check(host, params):
    minimum, bad = _param(params, "preflight_min_disk_gib", "float", host, "disk", constraint={"min": 0})
    if bad:
        return [bad]
    path = str(params.get("preflight_disk_path") or "/var")
    df = params.get("df")
    if not isinstance(df, Mapping):
        return [record(host, "disk", "preflight_disk_path", path, ">= %s GiB" % _num(minimum), False,
                       "free space on preflight_disk_path %s was not measured" % path, WARNING)]
    parsed = parse_df(df.get("stdout")) if not df.get("rc") else None
    if parsed is None:
        reason = (df.get("stderr") or df.get("msg") or "no df output").strip().splitlines()
        return [record(
            host, "disk", "preflight_disk_path", path, "an existing path", False,
            "preflight_disk_path %s cannot be measured: %s" % (path, reason[0] if reason else "df failed"),
        )]
    available_kib, mount = parsed
    free_gib = round(available_kib / 1024.0 / 1024.0, 1)
    ok = available_kib >= minimum * 1024 * 1024
    return [record(
        host, "disk", "preflight_min_disk_gib", free_gib, ">= %s GiB" % _num(minimum), ok,
        "%s GiB free on %s (preflight_disk_path %s) meets preflight_min_disk_gib (%s)" % (
            _num(free_gib), mount, path, _num(minimum)) if ok else
        "%s GiB free on %s (preflight_disk_path %s) is below preflight_min_disk_gib (%s)" % (
            _num(free_gib), mount, path, _num(minimum)),
    )]


def _num(value):
    return ("%d" % value) if float(value).is_integer() else ("%s" % value)


def _swap_check(facts, host, params, caps):
    disable, bad = _param(params, "common_disable_swap", "bool", host, "swap", default=True)
    if bad:
        return [bad]
    if "swap_active" in caps:
        active = bool(caps.get("swap_active"))
        devices = [str(d.get("name", d)) if isinstance(d, Mapping) else str(d) for d in caps.get("swap_devices") or []]
    else:
        active = int(facts.get("swaptotal_mb") or 0) > 0
        devices = []
    where = " (%s)" % ", ".join(devices) if devices else ""
    if not active:
        return [record(host, "swap", "common_disable_swap", False, "no swap, or common_disable_swap true", True,
                       "no swap is active")]
    if disable and caps.get("container"):
        return [record(
            host, "swap", "common_disable_swap", True, "no swap, or common_disable_swap true", False,
            "swap is active%s; it is the machine's swap, which the common role cannot turn off in a container "
            "(common_disable_swap is true)" % where, WARNING,
        )]
    if disable:
        return [record(host, "swap", "common_disable_swap", True, "no swap, or common_disable_swap true", True,
                       "swap is active%s; the common role turns it off (common_disable_swap is true)" % where)]
    return [record(
        host, "swap", "common_disable_swap", True, "no swap, or common_disable_swap true", False,
        "swap is active%s while common_disable_swap is false; the kubelet does not run with swap on: turn swap "
        "off or set common_disable_swap: true" % where,
    )]


def _cgroup_check(host, params, caps):
    allow, bad = _param(params, "preflight_allow_cgroup_v1", "bool", host, "cgroup", default=False)
    if bad:
        return [bad]
    version = caps.get("cgroup_version")
    mode = caps.get("cgroup_mode") or "unknown"
    if version is None:
        return [record(host, "cgroup", "preflight_allow_cgroup_v1", None, 2, False,
                       "the cgroup version could not be determined (gpuforge_node.cgroup_version is unknown)", WARNING)]
    version = int(version)
    if version >= 2:
        return [record(host, "cgroup", "preflight_allow_cgroup_v1", version, 2, True, "cgroup v2 (%s) is in use" % mode)]
    if allow:
        return [record(host, "cgroup", "preflight_allow_cgroup_v1", version, 2, True,
                       "cgroup v1 (%s) is accepted because preflight_allow_cgroup_v1 is true (labs only)" % mode)]
    return [record(
        host, "cgroup", "preflight_allow_cgroup_v1", version, 2, False,
        "cgroup v1 (%s) is in use and preflight_allow_cgroup_v1 is false; Kubernetes needs cgroup v2 "
        "(boot with systemd.unified_cgroup_hierarchy=1)" % mode,
    )]


def fact_time(facts):
    """Host time (epoch seconds, float) when the date_time facts were collected, or None."""
    date_time = facts.get("date_time") or {}
    micro = date_time.get("iso8601_micro")
    if micro:
        try:
            return datetime.strptime(str(micro), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    epoch = date_time.get("epoch")
    try:
        return float(epoch) + 0.5 if epoch not in (None, "") else None
    except ValueError:
        return None


def _clock_check(facts, host, params, caps):
    limit, bad = _param(params, "preflight_max_clock_skew_s", "float", host, "clock", constraint={"min": 0})
    if bad:
        return [bad]
    host_time = fact_time(facts)
    before, after = params.get("clock_before"), params.get("clock_after")
    if host_time is None or before in (None, "") or after in (None, ""):
        return [record(host, "clock", "preflight_max_clock_skew_s", None, "<= %s s" % _num(limit), False,
                       "clock skew was not measured (no date_time facts or controller times)", WARNING)]
    before, after = float(before), float(after)
    # The host's clock was read between `before` and `after` on the controller's
    # clock: any reading inside that window means no measurable skew.
    skew = host_time - min(max(host_time, before), after)
    skew = round(skew, 3)
    ok = abs(skew) <= limit
    direction = "ahead of" if skew > 0 else "behind"
    records = [record(
        host, "clock", "preflight_max_clock_skew_s", skew, "<= %s s" % _num(limit), ok,
        "clock is within preflight_max_clock_skew_s (%s s) of the controller (skew %s s)" % (_num(limit), _num(skew))
        if ok else
        "clock is %s s %s the controller, more than preflight_max_clock_skew_s (%s)" % (
            _num(abs(skew)), direction, _num(limit)),
    )]
    if caps.get("container"):
        records.append(record(host, "time_sync", "gpuforge_node.time_sync", caps.get("time_sync"), True, True,
                              "host is a container; its clock is the machine's clock"))
    elif "time_sync" in caps:
        synced = caps.get("time_sync")
        records.append(record(
            host, "time_sync", "gpuforge_node.time_sync", synced, True, synced is True,
            "the clock is synchronised (NTP)" if synced is True else
            "the clock is not synchronised (gpuforge_node.time_sync is %s); the common role configures time sync"
            % _show(synced), WARNING,
        ))
    return records


def _python_check(facts, host, params):
    minimum_text, bad = _param(params, "preflight_min_python_version", "str", host, "python",
                               constraint={"format": "version"})
    if bad:
        return [bad]
    minimum = _version_tuple(minimum_text)
    python = facts.get("python") or {}
    version = python.get("version") or {}
    if version:
        actual = (int(version.get("major", 0)), int(version.get("minor", 0)), int(version.get("micro", 0)))
    else:
        actual = _version_tuple(facts.get("python_version") or "0") or (0,)
    shown = ".".join(str(p) for p in actual)
    ok = actual >= minimum
    return [record(
        host, "python", "preflight_min_python_version", shown, ">= %s" % minimum_text, ok,
        "Python %s meets preflight_min_python_version (%s)" % (shown, minimum_text) if ok else
        "Python %s is older than preflight_min_python_version (%s)" % (shown, minimum_text),
    )]


def _node_ip_check(facts, host, params):
    node_ip = params.get("node_ip")
    addresses = [str(a) for a in (facts.get("all_ipv4_addresses") or []) + (facts.get("all_ipv6_addresses") or [])]
    if params.get("node_ip_set"):
        ok = str(node_ip) in addresses
        return [record(
            host, "node_ip", "gpuforge_node_ip", node_ip, "an address of the host", ok,
            "gpuforge_node_ip %s is an address of this host" % node_ip if ok else
            "gpuforge_node_ip %s is not an address of this host (it has %s)" % (
                node_ip, ", ".join(addresses) or "no addresses"),
        )]
    if node_ip in (None, ""):
        return [record(host, "node_ip", "gpuforge_node_ip", None, "an IP address", False,
                       "host has no default IPv4 address and gpuforge_node_ip is not set; set gpuforge_node_ip")]
    return [record(host, "node_ip", "gpuforge_node_ip", node_ip, "an IP address", True,
                   "node IP %s (default IPv4 address; gpuforge_node_ip is not set)" % node_ip)]


def _gpu_checks(host, params):
    """GPU checks, when params has ``gpu`` (the result of nvidia_gpu_facts, or its failure).

    params: gpu ({ansible_facts: {nvidia: ...}} or {failed, msg}), is_gpu_worker, and the
    driver the nvidia_driver role would install: nvidia_driver_branch, nvidia_driver_version,
    nvidia_driver_kernel_modules. The driver must suit every GPU of the host (the same
    rules the role applies, before anything is installed anywhere).
    """
    if "gpu" not in params:
        return []
    result = params.get("gpu") or {}
    if not isinstance(result, Mapping):
        raise AnsibleFilterError("preflight_host_checks: gpu of %s must be a dict" % host)
    nvidia = (result.get("ansible_facts") or {}).get("nvidia")
    if nvidia is None:
        reason = (str(result.get("msg") or "no facts were returned").strip().splitlines() or ["?"])[0]
        variable = "gpuforge_gpu_simulated_smi_xml" if "simulated_smi_xml" in reason else "nvidia"
        return [record(host, "gpu_facts", variable, None, "GPU facts", False,
                       "the NVIDIA GPU facts could not be gathered: %s" % reason)]
    if not nvidia.get("present"):
        if params.get("is_gpu_worker"):
            return [record(host, "gpu_present", "gpu_workers", False, True, False,
                           "host is in group gpu_workers but has no NVIDIA PCI device; the GPU roles leave it alone",
                           severity=WARNING)]
        return []
    checks = [record(host, "gpu_present", "gpu_workers", True, True, True,
                     "%d NVIDIA GPU(s): %s" % (nvidia.get("gpu_count") or 0, ", ".join(
                         sorted(set(str(g.get("name")) for g in nvidia.get("gpus") or []))) or "not described yet"))]
    version = str(params.get("nvidia_driver_version") or "").strip()
    branch = str(params.get("nvidia_driver_branch") or "").strip()
    variable = "nvidia_driver_version" if version else "nvidia_driver_branch"
    wanted = version or branch
    if not wanted or not nvidia.get("gpus"):
        return checks
    from ansible_collections.gpuforge.cluster.plugins.filter.nvidia_compat import nvidia_driver_check

    modules = params.get("nvidia_driver_kernel_modules") or "proprietary"
    try:
        problems = nvidia_driver_check(wanted, list(nvidia["gpus"]), kernel_modules=modules)
    except AnsibleFilterError as exc:
        return checks + [record(host, "gpu_driver", variable, wanted, "an NVIDIA driver branch or version", False,
                                "%s %r: %s" % (variable, wanted, str(exc).split(": ", 1)[-1]))]
    ok = not problems
    checks.append(record(
        host, "gpu_driver", variable, wanted, "a driver that suits the GPUs", ok,
        "driver %s (%s kernel modules) suits the GPUs" % (wanted, modules) if ok else
        "%s %s with %s kernel modules (nvidia_driver_kernel_modules) does not suit the GPUs of this host: %s" % (
            variable, wanted, modules, "; ".join(problems))))
    return checks


# ---------------------------------------------------------------------------
# cross-host checks


def preflight_cross_host_checks(identities):
    """Hostnames and node IPs unique across hosts.

    identities: ``{inventory_hostname: {hostname, node_ip}}`` (hosts without facts
    may map to an empty dict and are skipped).
    """
    identities = _require_mapping(identities, "identities")
    records = []
    for key, variable, what in (("hostname", "ansible_facts['hostname']", "hostname"),
                                ("node_ip", "gpuforge_node_ip", "node IP")):
        seen = {}
        for host, identity in identities.items():
            if not isinstance(identity, Mapping):
                raise AnsibleFilterError("identity of %s must be a dict" % host)
            value = identity.get(key)
            if value in (None, ""):
                continue
            seen.setdefault(str(value).lower(), []).append(str(host))
        for value, hosts in seen.items():
            for host in hosts:
                others = [h for h in hosts if h != host]
                records.append(record(
                    host, "%s_unique" % key, variable, value, "unique", not others,
                    "%s %s is unique in the cluster" % (what, value) if not others else
                    "%s %s is also the %s of %s; every node needs its own" % (what, value, what, ", ".join(others)),
                ))
    return records


# ---------------------------------------------------------------------------
# report


def preflight_report(checks, hosts=None, active_hosts=None, path=None, generated_at=None):
    """The preflight report: every check, errors and warnings, and one failure message.

    checks: all records (inventory, host and cross-host checks). hosts: every host the
    play targeted (ansible_play_hosts_all); active_hosts: those still in the play
    (ansible_play_hosts). A targeted host without any host-level check that is not
    active anymore dropped out (failed or unreachable) and is reported as an error.
    """
    checks = [dict(c) for c in _require_list(checks or [], "checks")]
    for check in checks:
        for key in ("host", "check", "ok", "severity", "message"):
            if key not in check:
                raise AnsibleFilterError("check record without %r: %r" % (key, check))
    hosts = [str(h) for h in _require_list(hosts or [], "hosts")]
    active = set(str(h) for h in _require_list(active_hosts if active_hosts is not None else hosts, "active_hosts"))
    host_level = set(c["host"] for c in checks if c["check"] not in _INVENTORY_CHECKS)
    for host in hosts:
        if host not in active and host not in host_level:
            checks.append(record(host, "reachable", "ansible_host", None, "reachable", False,
                                 "host dropped out of the play (failed or unreachable) before its checks ran"))

    # An invalid parameter is reported once: by the inventory variable check.
    reported = set((c["host"], c.get("variable")) for c in checks
                   if not c["ok"] and str(c["check"]).startswith("variable"))
    checks = [c for c in checks
              if not (c["check"] == PARAMETER_CHECK and (c["host"], c.get("variable")) in reported)]

    errors = [c["message"] for c in checks if not c["ok"] and c["severity"] == ERROR]
    warnings = [c["message"] for c in checks if not c["ok"] and c["severity"] == WARNING]
    per_host = {}
    for c in checks:
        entry = per_host.setdefault(c["host"], {"ok": True, "checks": 0, "errors": 0, "warnings": 0})
        entry["checks"] += 1
        if not c["ok"]:
            entry["errors" if c["severity"] == ERROR else "warnings"] += 1
            if c["severity"] == ERROR:
                entry["ok"] = False
    bad_hosts = sorted(h for h, e in per_host.items() if not e["ok"])
    if errors:
        where = []
        if INVENTORY in bad_hosts:
            where.append("the inventory")
        named = [h for h in bad_hosts if h != INVENTORY]
        if named:
            where.append("host%s %s" % ("s" if len(named) > 1 else "", ", ".join(named)))
        failure = "Preflight found %d error(s) in %s; nothing was changed%s:\n%s" % (
            len(errors), " and ".join(where),
            " (report: %s)" % path if path else "",
            "\n".join("- " + e for e in _grouped([c for c in checks if not c["ok"] and c["severity"] == ERROR])),
        )
    else:
        failure = ""
    return {
        "ok": not errors,
        "generated_at": generated_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "path": path,
        "summary": {"checks": len(checks), "errors": len(errors), "warnings": len(warnings),
                    "hosts": len(hosts), "failed_hosts": bad_hosts},
        "errors": errors,
        "warnings": warnings,
        "hosts": per_host,
        "checks": checks,
        "failure_message": failure,
    }


def _grouped(records):
    """Messages, the same problem of several hosts once: ``a, b: common_x 'y' is not a valid bool``."""
    order = []
    hosts = {}
    for c in records:
        prefix = "%s: " % c["host"]
        text = c["message"][len(prefix):] if c["message"].startswith(prefix) else c["message"]
        if text not in hosts:
            order.append(text)
            hosts[text] = []
        if c["host"] not in hosts[text]:
            hosts[text].append(c["host"])
    return ["%s: %s" % (", ".join(hosts[text]), text) for text in order]


_INVENTORY_CHECKS = frozenset((
    "group_defined", "group_not_empty", "control_plane_odd", "host_in_cluster", "gpu_worker_in_workers",
    "node_name", "node_name_unique", "ansible_host_unique", "node_ip_unique", "variables", "variable_unknown",
    "variable_type", "variable_choice", "variable_range", "variable_format", "variable_template",
    "variable_required", "variable_rule", "kubernetes_consistent", "node_address_subnet", "api_endpoint",
    "kubernetes_version_skew", "cni_pod_subnet",
))


class FilterModule(object):
    """gpuforge.cluster preflight filters."""

    def filters(self):
        return {
            "preflight_load_argument_specs": preflight_load_argument_specs,
            "preflight_inventory_checks": preflight_inventory_checks,
            "preflight_host_checks": preflight_host_checks,
            "preflight_cross_host_checks": preflight_cross_host_checks,
            "preflight_report": preflight_report,
        }

