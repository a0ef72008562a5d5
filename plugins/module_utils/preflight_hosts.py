# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight's host stage: checks of one host from its freshly gathered facts (operating system,
architecture, CPUs, memory, disk, swap, cgroup, clock, Python, node IP, GPUs and driver), and the checks
across hosts that need facts (hostnames and node IPs unique, the kube-vip VIP and interface usable on the
control planes)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime, timezone

from ansible_collections.gpuforge.cluster.plugins.module_utils import names
from ansible_collections.gpuforge.cluster.plugins.module_utils.argspec import convert, show, validate_value, version_tuple
from ansible_collections.gpuforge.cluster.plugins.module_utils.nvidia_catalog import CatalogError, driver_check
from ansible_collections.gpuforge.cluster.plugins.module_utils.preflight_report import (
    ERROR, PARAMETER_CHECK, WARNING, PreflightError, record, require_mapping)


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
    return convert(value, wanted), None


def host_checks(facts, host, params=None):
    """Checks of one host from its freshly gathered facts.

    facts: ``ansible_facts`` of the host. params keys (all optional except where a
    check needs them): is_control_plane, capabilities (``gpuforge_node``), df
    (``{rc, stdout, stderr}`` of ``df -P -k PATH``), clock_before / clock_after
    (controller epoch seconds bracketing fact gathering), node_ip (effective node
    IP), node_ip_set (whether gpuforge_node_ip was given), the ``preflight_*``
    variables and common_disable_swap. With ``unreachable`` (a reason) set, the
    only record is a failed ``reachable`` check and ``facts`` are not read.
    """
    params = require_mapping(params or {}, "params")
    host = str(host)
    if params.get("unreachable"):
        reason = (str(params["unreachable"]).strip().splitlines() or ["?"])[0]
        if len(reason) > 200:
            reason = reason[:197] + "..."
        return [record(host, "reachable", "ansible_host", None, "reachable", False,
                       "host is unreachable or its facts could not be gathered: %s" % reason)]
    facts = require_mapping(facts, "facts")
    if not facts.get("distribution") and not facts.get("architecture"):
        raise PreflightError("preflight_host_checks: %s has no gathered facts (distribution, architecture)" % host)
    caps = params.get("capabilities") or {}
    if not isinstance(caps, Mapping):
        raise PreflightError("preflight_host_checks: capabilities of %s must be a dict" % host)
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
            % show(synced), WARNING,
        ))
    return records


def _python_check(facts, host, params):
    minimum_text, bad = _param(params, "preflight_min_python_version", "str", host, "python",
                               constraint={"format": "version"})
    if bad:
        return [bad]
    minimum = version_tuple(minimum_text)
    python = facts.get("python") or {}
    version = python.get("version") or {}
    if version:
        actual = (int(version.get("major", 0)), int(version.get("minor", 0)), int(version.get("micro", 0)))
    else:
        actual = version_tuple(facts.get("python_version") or "0") or (0,)
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
        raise PreflightError("preflight_host_checks: gpu of %s must be a dict" % host)
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
    modules = params.get("nvidia_driver_kernel_modules") or "proprietary"
    try:
        problems = driver_check(wanted, list(nvidia["gpus"]), kernel_modules=modules)
    except CatalogError as exc:
        return checks + [record(host, "gpu_driver", variable, wanted, "an NVIDIA driver branch or version", False,
                                "%s %r: %s" % (variable, wanted, str(exc)))]
    ok = not problems
    checks.append(record(
        host, "gpu_driver", variable, wanted, "a driver that suits the GPUs", ok,
        "driver %s (%s kernel modules) suits the GPUs" % (wanted, modules) if ok else
        "%s %s with %s kernel modules (nvidia_driver_kernel_modules) does not suit the GPUs of this host: %s" % (
            variable, wanted, modules, "; ".join(problems))))
    return checks


# ---------------------------------------------------------------------------
# cross-host checks


def identity(facts, node_ip=None):
    """What the checks across hosts need of one host's facts: hostname, node IP, interfaces, the default
    route's interface and the networks (CIDR) of its IPv4 and IPv6 addresses."""
    facts = require_mapping(facts, "facts")
    interfaces = [str(i) for i in facts.get("interfaces") or []]
    networks = []
    for name in interfaces:
        data = facts.get(name.replace("-", "_").replace(":", "_").replace(".", "_")) or {}
        if not isinstance(data, Mapping):
            continue
        for entry in [data.get("ipv4")] + list(data.get("ipv4_secondaries") or []):
            if isinstance(entry, Mapping) and entry.get("address") and entry.get("netmask"):
                net = names.network("%s/%s" % (entry["address"], entry["netmask"]))
                if net is None:
                    try:
                        net = ipaddress.ip_interface("%s/%s" % (entry["address"], entry["netmask"])).network
                    except ValueError:
                        net = None
                if net is not None and str(net) not in networks:
                    networks.append(str(net))
        for entry in data.get("ipv6") or []:
            if isinstance(entry, Mapping) and entry.get("address") and entry.get("prefix") \
                    and entry.get("scope") in (None, "global"):
                try:
                    net = ipaddress.ip_interface("%s/%s" % (entry["address"], entry["prefix"])).network
                except ValueError:
                    continue
                if str(net) not in networks:
                    networks.append(str(net))
    return {"hostname": facts.get("hostname"), "node_ip": node_ip or "", "interfaces": interfaces,
            "default_interface": (facts.get("default_ipv4") or {}).get("interface") or "", "networks": networks}


def cross_host_checks(identities, model=None, vip_interface=None):
    """Hostnames and node IPs unique across hosts, and (gpuforge_ha_mode kube_vip) the VIP in a network of
    every control plane, on an interface each of them has.

    identities: ``{inventory_hostname: {hostname, node_ip, networks, interfaces, default_interface}}`` from the
    hosts' facts (hosts without facts may map to an empty dict and are skipped); networks: the CIDRs of the
    host's IPv4 and IPv6 addresses. model: the cluster model (gpuforge_cluster). vip_interface: the control
    planes' kubernetes_control_plane_vip_interface ({host: name}; empty: the default route's).
    """
    identities = require_mapping(identities, "identities")
    records = []
    for key, variable, what in (("hostname", "ansible_facts['hostname']", "hostname"),
                                ("node_ip", "gpuforge_node_ip", "node IP")):
        seen = {}
        for host, identity in identities.items():
            if not isinstance(identity, Mapping):
                raise PreflightError("identity of %s must be a dict" % host)
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
    if model:
        records.extend(_vip_checks(identities, model, vip_interface or {}))
    return records


def _vip_checks(identities, model, vip_interface):
    """kube-vip announces the VIP with ARP (NDP) from the control plane that leads: the VIP must be an address of a
    network every control plane is on, and the interface it uses must exist there."""
    api = model.get("api") or {}
    if api.get("ha_mode") != "kube_vip" or not names.is_ip(api.get("vip")):
        return []
    vip = names.ip(api["vip"])
    records = []
    for host in (model.get("groups") or {}).get("control_plane") or []:
        identity = identities.get(host) or {}
        if not identity:
            continue
        networks = [n for n in (names.network(c) for c in identity.get("networks") or []) if n is not None]
        inside = [n for n in networks if n.version == vip.version and vip in n and n.prefixlen < n.max_prefixlen]
        records.append(record(
            host, "vip_network", "gpuforge_vip", str(vip), "inside a network of the control plane", bool(inside),
            "gpuforge_vip %s is in the control plane's network %s" % (vip, inside[0]) if inside else
            "gpuforge_vip %s is in no network of this control plane (it has %s): kube-vip announces the VIP with ARP "
            "on the control planes' own network, so nothing would reach it; choose an unused address of that network"
            % (vip, ", ".join(str(n) for n in networks) or "no address")))
        wanted = str(vip_interface.get(host) or "") or str(identity.get("default_interface") or "")
        interfaces = [str(i) for i in identity.get("interfaces") or []]
        ok = bool(wanted) and wanted in interfaces
        records.append(record(
            host, "vip_interface", "kubernetes_control_plane_vip_interface", wanted, "an interface of the host", ok,
            "kube-vip announces the VIP on %s" % wanted if ok else
            "kubernetes_control_plane_vip_interface %s is not an interface of this control plane (it has %s); set it "
            "to the interface of the control planes' network" % (
                show(wanted or "(none: no default route)"), ", ".join(sorted(interfaces)) or "none")))
    return records
