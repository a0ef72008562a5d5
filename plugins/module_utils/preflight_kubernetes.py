# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight's checks of the Kubernetes layer across hosts and roles, from the inventory alone (the
variable rules, variable_rules.py, judge one host's variables; these judge hosts against each other and
against the cluster model): the cluster's own variables the same on every host, node addresses outside the
pod and service subnets, an API endpoint the nodes can reach, kubeadm and kubelet releases within the
version skew policy.

What "an endpoint the nodes can reach" means here is static reasoning about the inventory, before the
cluster exists (nothing answers on a first run): with ha_mode none the endpoint must be a control plane's
address, with kube_vip the VIP must be no node's address (the endpoint is the VIP), with external the
load balancer must not be a control plane's own API port. docs/kubernetes.md says so.
"""

from __future__ import annotations

from ansible_collections.gpuforge.cluster.plugins.module_utils import cluster, names
from ansible_collections.gpuforge.cluster.plugins.module_utils.argspec import show
from ansible_collections.gpuforge.cluster.plugins.module_utils.preflight_report import (
    INVENTORY, WARNING, hosts_text, record)

P = cluster.PREFIX
# The Kubernetes version skew policy: a kubelet may be up to this many minors older than the API server.
KUBELET_MAX_MINORS_OLDER = 3
# The cluster's own variables compared across hosts (the kubeconfig's place is the controller's, per run).
CONSISTENT = tuple(n for n in cluster.CLUSTER_WIDE if n != P + "kubeconfig")


def kubernetes_checks(groups, hosts, values, records, origins=None):
    """Records of the checks across hosts. values: cluster.Values (defaults applied); records: those so far
    (a variable that failed its own check is not judged again); origins(variable, host): where a host's value
    was set (inventory.InventoryFiles.origins), for the messages."""
    if not hosts:
        return []
    control_planes = [h for h in (groups.get(cluster.CONTROL_PLANE_GROUP) or []) if h in hosts]
    reference = control_planes[0] if control_planes else hosts[0]
    what = "the first control plane %s" % reference if control_planes else \
        "%s (the first host of k8s_cluster; group control_plane has none)" % reference
    failed = {(r["host"], r["variable"]) for r in records if not r["ok"] and r["severity"] == "error"}
    values.broken |= {(r["host"], r["variable"]) for r in records
                      if not r["ok"] and str(r["check"]).startswith("variable_") and r["check"] != "variable_rule"}
    out = []
    out.extend(consistency_checks(hosts, reference, what, values, origins))
    settings = {}
    for name in CONSISTENT:
        usable, value, _ = values.value(reference, name)
        settings[name] = value if usable else None
    addresses = {host: node_addresses(host, values) for host in hosts}
    out.extend(subnet_checks(hosts, addresses, settings))
    reported = any((reference, P + n) in failed for n in ("ha_mode", "control_plane_endpoint", "vip", "api_port"))
    out.extend(endpoint_checks(hosts, control_planes, reference, addresses, settings, reported))
    out.extend(version_skew_checks(hosts, control_planes, values, settings))
    return out


def _where(origins, name, host, set_here):
    if not set_here:
        return " (the default: not set for this host)"
    found = origins(name, host) if origins else []
    return " (set in %s)" % ", ".join(found[:2]) if found else ""


def consistency_checks(hosts, reference, what, values, origins=None):
    out = []
    for name in CONSISTENT:
        usable, wanted, ref_set = values.value(reference, name)
        if not usable:
            continue
        holders = {}  # shown value: hosts, the reference's value first
        differing = []
        for host in [reference] + [h for h in hosts if h != reference]:
            usable, value, set_here = values.value(host, name)
            if not usable:
                continue
            holders.setdefault(show(value), []).append(host)
            if value != wanted:
                differing.append((host, value, set_here))
        if not differing:
            continue
        listing = "; ".join("%s on %s" % (shown, hosts_text(names_)) for shown, names_ in holders.items())
        for host, value, set_here in differing:
            out.append(record(
                host, "kubernetes_consistent", name, value, wanted, False,
                "%s is %s%s but %s%s on %s (values: %s); kubeadm sets the cluster up once, so every host of "
                "k8s_cluster must see the same value: set %s once in group_vars/k8s_cluster, not per host or "
                "per group" % (
                    name, show(value), _where(origins, name, host, set_here), show(wanted),
                    _where(origins, name, reference, ref_set), what, listing, name),
            ))
    if not out:
        out.append(record(
            INVENTORY, "kubernetes_consistent", P + "*", len(hosts), "the same on every host", True,
            "the cluster-wide variables %s are the same on all %d host(s) of k8s_cluster" % (
                ", ".join(CONSISTENT), len(hosts)),
        ))
    return out


def node_addresses(host, values):
    """[(address, [variables])] of the IP addresses of a host that the inventory names."""
    found = []
    usable, value, _ = values.value(host, P + "node_ip")
    address = names.ip(value) if usable and value not in (None, "") else None
    if address is not None:
        found.append((address, P + "node_ip"))
    _set, ansible_host, error = values.raw(host, "ansible_host")
    address = names.ip(ansible_host) if error is None and ansible_host not in (None, "") else None
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


def subnet_checks(hosts, addresses, settings):
    subnets = []
    for name in (P + "pod_subnet", P + "service_subnet"):
        net = names.network(settings.get(name)) if settings.get(name) else None
        if net is not None:
            subnets.append((name, net))
    if not subnets:
        return []
    why = {
        P + "pod_subnet": "the CNI routes the pod subnet to pods, so traffic to this node would go astray",
        P + "service_subnet": "kube-proxy captures the service subnet, so traffic to this node would be taken for "
                              "service traffic",
    }
    out = []
    for host in hosts:
        if not addresses[host]:
            continue
        failed = False
        for address, found_in in addresses[host]:
            for subnet_name, net in subnets:
                if address.version == net.version and address in net:
                    failed = True
                    out.append(record(
                        host, "node_address_subnet", found_in[0], str(address), "outside %s" % net, False,
                        "%s %s is inside %s %s: %s; choose a %s (in group_vars/k8s_cluster) that no node address "
                        "falls in" % (" and ".join(found_in), address, subnet_name, net, why[subnet_name], subnet_name),
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


def endpoint_checks(hosts, control_planes, reference, addresses, settings, reported=False):
    """reported: the rule checks already failed a variable of the endpoint (no passed record then)."""
    mode = settings.get(P + "ha_mode")
    if mode is None:
        return []
    endpoint = settings.get(P + "control_plane_endpoint") or ""
    vip = names.ip(settings.get(P + "vip")) if settings.get(P + "vip") else None
    port = settings.get(P + "api_port")
    port = port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else 6443
    out = []

    if mode == "kube_vip" and vip is not None:
        for host in hosts:
            for address, found_in in addresses[host]:
                if address == vip:
                    out.append(record(
                        host, "api_endpoint", P + "vip", str(vip), "an unused address", False,
                        "%svip %s is the address of this host (%s): kube-vip would take over the node's own address; "
                        "choose an unused IP address of the control planes' subnet for %svip" % (
                            P, vip, ", ".join(found_in), P),
                    ))

    endpoint_host, endpoint_port = None, port
    if endpoint:
        try:
            endpoint_host, endpoint_port = names.split_endpoint(endpoint, port)
        except ValueError:
            endpoint_host = None  # the rule check reported it
    endpoint_ip = names.ip(endpoint_host) if endpoint_host else None
    if endpoint_ip is not None:
        cp_addresses = {}
        for host in control_planes:
            for address, _ in addresses[host]:
                cp_addresses.setdefault(address, host)
        owner = cp_addresses.get(endpoint_ip)
        if mode == "external":
            if owner is not None and endpoint_port == port:
                out.append(record(
                    reference, "api_endpoint", P + "control_plane_endpoint", endpoint, "a load balancer", False,
                    "%scontrol_plane_endpoint %s (ha_mode external: the load balancer) is the address of control plane "
                    "%s on %sapi_port %d, where its own API server listens: the nodes would reach %s only, not a load "
                    "balancer, and lose the API when it is down; set %scontrol_plane_endpoint to the load balancer" % (
                        P, endpoint, owner, P, port, owner, P),
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
                        reference, "api_endpoint", P + "control_plane_endpoint", endpoint, "a control plane's address",
                        False,
                        "%scontrol_plane_endpoint %s is not the address of a control plane (%s) and %sha_mode is none, "
                        "so no load balancer or VIP holds it: nothing would answer there; leave "
                        "%scontrol_plane_endpoint empty (the first control plane's address) or set it to a control "
                        "plane's address, or set %sha_mode external when a load balancer answers at %s" % (
                            P, endpoint, where, P, P, P, endpoint),
                    ))
                else:
                    out.append(record(
                        reference, "api_endpoint", P + "control_plane_endpoint", endpoint, "the VIP", False,
                        "%scontrol_plane_endpoint %s is neither the VIP nor the address of a control plane (%s): "
                        "nothing may answer there; leave %scontrol_plane_endpoint empty (the VIP)" % (
                            P, endpoint, where, P),
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
            INVENTORY, "api_endpoint", P + "control_plane_endpoint", endpoint, "an endpoint the nodes reach", True,
            "the nodes reach the API at %s (%sha_mode %s, %d control plane(s))" % (
                shown, P, mode, len(control_planes)),
        ))
    return out


def version_skew_checks(hosts, control_planes, values, settings):
    wanted_text = settings.get(P + "kubernetes_version")
    wanted = names.release(wanted_text)
    if wanted is None:
        return []
    minor = "%d.%d" % wanted[:2]
    oldest = "%d.%d" % (wanted[0], max(wanted[1] - KUBELET_MAX_MINORS_OLDER, 0))
    name = cluster.NODE_VERSION_OVERRIDE
    out = []
    for host in hosts:
        usable, text, set_here = values.value(host, name)
        if not usable:
            continue  # its own check reported it
        if not set_here or not str(text or "").strip():
            continue  # the cluster's release
        have = names.release(text)
        if have is None:
            continue  # the rule check reported it
        if host in control_planes:
            ok = have[:2] == wanted[:2] and have[2] >= wanted[2]
            if ok:
                message = "kubeadm and kubelet %s (%s) deploy and run %skubernetes_version %s" % (
                    text, name, P, wanted_text)
            elif have[:2] != wanted[:2]:
                message = ("%s %s (kubeadm and kubelet of this control plane) is not a %s release like "
                           "%skubernetes_version %s: kubeadm sets up the control plane of its own minor only; remove "
                           "%s (the cluster's release applies) or set it to a newer %s patch" % (
                               name, text, minor, P, wanted_text, name, minor))
            else:
                message = ("%s %s (kubeadm of this control plane) is older than %skubernetes_version %s: kubeadm "
                           "cannot deploy a control plane newer than itself; remove %s (the cluster's release "
                           "applies) or set it to a newer %s patch" % (name, text, P, wanted_text, name, minor))
            out.append(record(host, "kubernetes_version_skew", name, text, "%s.Z, Z >= %d" % (minor, wanted[2]), ok,
                              message))
            continue
        behind = wanted[1] - have[1] if have[0] == wanted[0] else None
        ok = behind is not None and 0 <= behind <= KUBELET_MAX_MINORS_OLDER
        if ok:
            message = "kubelet %s (%s) is within the version skew policy of %skubernetes_version %s" % (
                text, name, P, wanted_text)
        elif behind is None:
            message = "%s %s (the kubelet) is not a %d.x release like %skubernetes_version %s; set %s to a release " \
                      "from %s to %s" % (name, text, wanted[0], P, wanted_text, name, oldest, minor)
        elif behind < 0:
            message = ("%s %s (the kubelet) is newer than %skubernetes_version %s: a kubelet must not be newer than "
                       "the API server (Kubernetes version skew policy); set %s to a %s release or older (down to %s)"
                       % (name, text, P, wanted_text, name, minor, oldest))
        else:
            message = ("%s %s (the kubelet) is %d minor versions older than %skubernetes_version %s: the Kubernetes "
                       "version skew policy allows a kubelet at most %d minors older than the API server; set %s to a "
                       "release from %s to %s" % (name, text, behind, P, wanted_text, KUBELET_MAX_MINORS_OLDER,
                                                  name, oldest, minor))
        out.append(record(host, "kubernetes_version_skew", name, text, "%s to %s" % (oldest, minor), ok, message))
    return out
