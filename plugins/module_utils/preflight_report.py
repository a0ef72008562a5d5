# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight's records and its report.

Every check returns a list of *records*::

    {host, check, variable, value, expected, ok, severity, message}

``severity`` is ``error`` or ``warning`` (what a failed check means), ``ok`` says whether the check
passed and ``message`` is one sentence naming the host and the variable. ``report()`` gathers them into
the report preflight writes on the controller and the one failure it stops the run with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from ansible_collections.gpuforge.cluster.plugins.module_utils.argspec import plain

ERROR = "error"
WARNING = "warning"
# The pseudo-host of records about the inventory as a whole.
INVENTORY = "inventory"
# Checks that cannot run because a parameter is invalid report under this name; report() drops them when
# the inventory stage already reported the same variable of the same host.
PARAMETER_CHECK = "parameter"
# A value never shown (a secret's): report records carry this instead.
REDACTED = "(hidden)"


class PreflightError(ValueError):
    """Input the checks cannot work with (a programming error of the caller, not a finding)."""


def record(host, check, variable, value, expected, ok, message, severity=ERROR):
    """One check result. ``message`` is prefixed with the host when it does not start with it."""
    if severity not in (ERROR, WARNING):
        raise PreflightError("severity must be error or warning, got %r" % (severity,))
    host = str(host)
    prefix = "%s: " % host
    if not message.startswith(prefix):
        message = prefix + message
    return {
        "host": host,
        "check": check,
        "variable": variable,
        "value": plain(value),
        "expected": plain(expected),
        "ok": bool(ok),
        "severity": severity,
        "message": message,
    }


def require_mapping(value, what):
    if not isinstance(value, Mapping):
        raise PreflightError("%s must be a dict, got %s" % (what, type(value).__name__))
    return value


def require_list(value, what):
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise PreflightError("%s must be a list, got %s" % (what, type(value).__name__))
    return list(value)


HOSTS_SHOWN = 6


def hosts_text(names):
    """Host names for a message: six at most, then "and N more"."""
    names = list(names)
    if len(names) <= HOSTS_SHOWN:
        return ", ".join(names)
    return "%s and %d more" % (", ".join(names[:HOSTS_SHOWN]), len(names) - HOSTS_SHOWN)


def sharing(names):
    """(name, the other names) for each name of a group that holds more than one."""
    if len(names) < 2:
        return []
    return [(name, [n for n in names if n != name]) for name in names]


# Checks of the inventory stage (no host contacted): a host that has only these did not drop out.
INVENTORY_CHECKS = frozenset((
    "group_defined", "group_not_empty", "group_name", "control_plane_odd", "host_in_cluster", "gpu_worker_in_workers",
    "node_name", "node_name_unique", "ansible_host", "ansible_host_unique", "node_ip_unique", "variables",
    "variable_unknown", "variable_renamed", "variable_type", "variable_choice", "variable_range", "variable_format",
    "variable_template", "variable_required", "variable_rule", "inventory_file", "kubernetes_consistent",
    "node_address_subnet", "api_endpoint", "kubernetes_version_skew",
))


def report(checks, hosts=None, active_hosts=None, path=None, generated_at=None, stage=None):
    """The preflight report: every check, errors and warnings, and one failure message.

    checks: all records. hosts: every host the play targeted (ansible_play_hosts_all); active_hosts: those
    still in the play (ansible_play_hosts). A targeted host without any host-level check that is not active
    any more dropped out (failed or unreachable) and is reported as an error. stage: 'inventory' (no host
    was contacted) or 'hosts', said in the failure message.
    """
    checks = [dict(c) for c in require_list(checks or [], "checks")]
    for check in checks:
        for key in ("host", "check", "ok", "severity", "message"):
            if key not in check:
                raise PreflightError("check record without %r: %r" % (key, check))
    hosts = [str(h) for h in require_list(hosts or [], "hosts")]
    active = set(str(h) for h in require_list(active_hosts if active_hosts is not None else hosts, "active_hosts"))
    host_level = set(c["host"] for c in checks if c["check"] not in INVENTORY_CHECKS)
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
        failure = "Preflight found %d error(s) in %s; nothing was changed%s%s:\n%s" % (
            len(errors), " and ".join(where),
            " and no host was contacted" if stage == "inventory" else "",
            " (report: %s)" % path if path else "",
            "\n".join("- " + e for e in grouped([c for c in checks if not c["ok"] and c["severity"] == ERROR])),
        )
    else:
        failure = ""
    return {
        "ok": not errors,
        "stage": stage,
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


def grouped(records):
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
