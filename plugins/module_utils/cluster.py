# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The cluster model: what every role and playbook must agree on, derived once from the inventory.

``build(groups, hostvars)`` returns ``(model, problems)``. The model is the fact ``gpuforge_cluster`` that
gpuforge.cluster.cluster_model sets on every host (the first play of site.yml builds it); roles and
playbooks read it instead of each other's variables, and nothing else derives a node name, a kubeadm
path, the API endpoint, the kubeconfig's place or the Kubernetes version::

    {name, kubernetes_version, kubernetes_minor, pod_subnet, service_subnet, dns_domain, cri_socket,
     allow_http_downloads, lab,
     groups: {cluster, control_plane, workers, gpu_workers},   # inventory hostnames, inventory order
     first_control_plane,                                      # inventory hostname, or None
     api: {port, ha_mode, vip, endpoint: {host, port, address, source}, kubeconfig, delegate_to},
     nodes: {host: {name, ip, control_plane, first_control_plane, worker, gpu_worker,
                    kubernetes_version, kubeadm_dir}},
     node_hosts: {node name: host}}

``api.endpoint.host`` is empty when it is the first control plane's address and the inventory does not
give it (``gpuforge_node_ip``): gpuforge.cluster.kubernetes_control_plane reads it from that host's facts.

``problems`` are ``(host, variable, check, message)`` tuples: what makes the model unusable (node names
that are not DNS-1123 names or not unique, several control planes without an HA endpoint); preflight
reports them with every other problem, the cluster_model role fails with them. A cluster without a
control plane is not one of them (``first_control_plane`` is None): roles that need one say so, and
preflight requires the group. ``nodes`` has every host of the inventory; ``groups`` only the cluster's.

The cluster-wide variables (prefix ``gpuforge_``) and their defaults are the options of
roles/cluster_model/meta/argument_specs.yml. ``RENAMED`` maps the variables the model replaced to
their new names.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, inventory, names

CLUSTER_GROUP = "k8s_cluster"
CONTROL_PLANE_GROUP = "control_plane"
WORKERS_GROUP = "workers"
GPU_WORKERS_GROUP = "gpu_workers"
NODE_GROUPS = (CONTROL_PLANE_GROUP, WORKERS_GROUP, GPU_WORKERS_GROUP)
KNOWN_GROUPS = (CLUSTER_GROUP,) + NODE_GROUPS
PREFIX = "gpuforge_"
MODEL_ROLE = "cluster_model"
FACT = "gpuforge_cluster"

# The model's variables that are the cluster's own: every host must see the same value.
CLUSTER_WIDE = tuple(PREFIX + n for n in (
    "cluster_name", "kubernetes_version", "pod_subnet", "service_subnet", "dns_domain", "api_port", "ha_mode",
    "control_plane_endpoint", "vip", "kubeconfig", "cri_socket", "kubeadm_ignore_preflight_errors"))
# Per host.
PER_HOST = tuple(PREFIX + n for n in ("node_name", "node_ip", "kubeadm_dir"))
# A host may override the release of its kubeadm, kubelet and kubectl (a staged kubelet upgrade).
NODE_VERSION_OVERRIDE = "kubernetes_node_version"

# Variables the model replaced: old name -> new name. Preflight refuses the old ones, naming the new.
RENAMED = {
    "kubernetes_control_plane_version": "gpuforge_kubernetes_version",
    "kubernetes_control_plane_cluster_name": "gpuforge_cluster_name",
    "kubernetes_control_plane_pod_subnet": "gpuforge_pod_subnet",
    "cni_pod_subnet": "gpuforge_pod_subnet",
    "kubernetes_control_plane_service_subnet": "gpuforge_service_subnet",
    "kubernetes_control_plane_dns_domain": "gpuforge_dns_domain",
    "kubernetes_control_plane_api_port": "gpuforge_api_port",
    "kubernetes_control_plane_ha_mode": "gpuforge_ha_mode",
    "kubernetes_control_plane_endpoint": "gpuforge_control_plane_endpoint",
    "kubernetes_control_plane_vip": "gpuforge_vip",
    "kubernetes_control_plane_node_name": "gpuforge_node_name",
    "kubernetes_worker_node_name": "gpuforge_node_name",
    "kubernetes_node_objects_node_name": "gpuforge_node_name",
    "kubernetes_control_plane_advertise_address": "gpuforge_node_ip",
    "kubernetes_node_ip": "gpuforge_node_ip",
    "kubernetes_control_plane_kubeconfig_dest": "gpuforge_kubeconfig",
    "kubernetes_node_objects_kubeconfig": "gpuforge_kubeconfig",
    "cni_kubeconfig": "gpuforge_kubeconfig",
    "kubernetes_control_plane_config_dir": "gpuforge_kubeadm_dir",
    "kubernetes_worker_config_dir": "gpuforge_kubeadm_dir",
    "kubernetes_upgrade_config_dir": "gpuforge_kubeadm_dir",
    "kubernetes_control_plane_cri_socket": "gpuforge_cri_socket",
    "kubernetes_worker_cri_socket": "gpuforge_cri_socket",
    "kubernetes_upgrade_drain_timeout": "kubernetes_drain_timeout",
    "kubernetes_upgrade_drain_grace_period": "kubernetes_drain_grace_period",
    "kubernetes_upgrade_drain_force": "kubernetes_drain_force",
    "gpuforge_reset_drain_timeout": "kubernetes_drain_timeout",
    "nvidia_container_toolkit_containerd_manage_imports": None,
    "containerd_refresh_nvidia_dropin": None,
}


def options(specs=None):
    """The cluster-wide variables' argument spec options (roles/cluster_model)."""
    specs = specs if specs is not None else argspec.load_argument_specs()
    return specs.get(MODEL_ROLE) or {}


class Values(object):
    """Hosts' variables as the roles see them: the spec's default where a host sets nothing, converted to
    the spec's type. A value that cannot be templated or converted is unusable: ``value()`` returns
    ``(False, None, set_here)`` and ``error()`` says why."""

    def __init__(self, hostvars, specs):
        self.hostvars = hostvars
        self.specs = {}
        for role_options in (specs or {}).values():
            for name, spec in (role_options or {}).items():
                self.specs.setdefault(name, spec or {})
        self._cache = {}
        self.broken = set()  # (host, variable) that other checks found unusable

    def spec(self, name):
        return self.specs.get(name) or {}

    def raw(self, host, name):
        """(set_here, value or the default, error text)."""
        key = (host, name)
        if key not in self._cache:
            variables = inventory.host_vars(self.hostvars, host)
            spec = self.spec(name)
            try:
                set_here = name in variables
            except Exception as exc:  # noqa: BLE001 - unusable hostvars
                self._cache[key] = (False, None, str(exc))
                return self._cache[key]
            value, error = inventory.get(variables, name, spec.get("default"))
            self._cache[key] = (set_here, value, error)
        return self._cache[key]

    def value(self, host, name):
        """(usable, value, set_here)."""
        set_here, value, error = self.raw(host, name)
        if error is not None or (host, name) in self.broken:
            return False, None, set_here
        spec = self.spec(name)
        if value is not None and spec:
            if argspec.validate_value(name, value, spec):
                return False, None, set_here
            try:
                value = argspec.convert(value, argspec.type_name(spec))
            except (TypeError, ValueError):
                return False, None, set_here
        return True, argspec.plain(value), set_here

    def error(self, host, name):
        return self.raw(host, name)[2]


def cluster_hosts(groups):
    """Hosts of k8s_cluster and of the node groups, in inventory order, once each."""
    hosts = []
    for group in KNOWN_GROUPS:
        for host in groups.get(group) or []:
            if host not in hosts:
                hosts.append(str(host))
    return hosts


def reference_host(groups):
    """The host whose value of a cluster-wide variable is the cluster's: the first control plane, else the
    first cluster host, else the first host of the inventory (a role used on its own)."""
    hosts = cluster_hosts(groups)
    control_planes = [h for h in groups.get(CONTROL_PLANE_GROUP) or [] if h in hosts]
    if control_planes:
        return control_planes[0]
    if hosts:
        return hosts[0]
    everyone = [str(h) for h in groups.get("all") or []]
    return everyone[0] if everyone else None


def kubeconfig_default(hostvars, host, cluster_name, playbook_dir=None):
    variables = inventory.host_vars(hostvars, host) if host else {}
    folder, _ = inventory.get(variables, "inventory_dir", None)
    folder = folder or playbook_dir or "."
    return "%s/artifacts/%s-admin.conf" % (str(folder).rstrip("/"), cluster_name)


def build(groups, hostvars, specs=None, playbook_dir=None):
    """(model, problems) of an inventory. ``specs``: the roles' argument specs (argspec.load_argument_specs)."""
    specs = specs if specs is not None else argspec.load_argument_specs()
    values = Values(hostvars, specs)
    problems = []
    hosts = cluster_hosts(groups)
    control_planes = [str(h) for h in groups.get(CONTROL_PLANE_GROUP) or [] if h in hosts]
    workers = [str(h) for h in groups.get(WORKERS_GROUP) or [] if h in hosts]
    gpu_workers = [str(h) for h in groups.get(GPU_WORKERS_GROUP) or [] if h in hosts]
    reference = reference_host(groups)

    def cluster_value(name):
        if reference is None:
            return argspec.defaults(options(specs)).get(name)
        usable, value, _ = values.value(reference, name)
        if not usable:
            error = values.error(reference, name)
            problems.append((reference, name, "variable_template" if error else "variable_type",
                             "%s cannot be used: %s" % (name, error or "it is not a valid %s"
                                                        % argspec.type_name(values.spec(name)))))
            return argspec.defaults(options(specs)).get(name)
        return value

    cluster = {name: cluster_value(name) for name in CLUSTER_WIDE}
    name = str(cluster[PREFIX + "cluster_name"])
    version = str(cluster[PREFIX + "kubernetes_version"]).strip()
    release = names.release(version)
    port = cluster[PREFIX + "api_port"]
    port = port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else 6443
    mode = cluster[PREFIX + "ha_mode"]
    vip = str(cluster[PREFIX + "vip"] or "")

    nodes = {}
    node_hosts = {}
    # Every host of the inventory has an entry (a role may run on a host outside the node groups, e.g. in
    # its Molecule scenario); node names are judged for the cluster's hosts only.
    everyone = hosts + [str(h) for h in groups.get("all") or [] if str(h) not in hosts]
    for host in everyone:
        usable, node_name, _ = values.value(host, PREFIX + "node_name")
        node_name = (node_name if usable else "") or host
        usable, ip, _ = values.value(host, PREFIX + "node_ip")
        usable_dir, kubeadm_dir, _ = values.value(host, PREFIX + "kubeadm_dir")
        usable_version, node_version, _ = values.value(host, NODE_VERSION_OVERRIDE)
        nodes[host] = {
            "name": str(node_name),
            "ip": str(ip or "") if usable else "",
            "control_plane": host in control_planes,
            "first_control_plane": bool(control_planes) and host == control_planes[0],
            "worker": host in workers,
            "gpu_worker": host in gpu_workers,
            "kubernetes_version": str(node_version or "").strip() if usable_version and node_version else version,
            "kubeadm_dir": str(kubeadm_dir if usable_dir and kubeadm_dir else "/etc/kubernetes").rstrip("/") or "/",
        }
        if host in hosts:
            node_hosts.setdefault(str(node_name), host)

    problems.extend(node_name_problems({h: nodes[h] for h in hosts}))
    endpoint_text = str(cluster[PREFIX + "control_plane_endpoint"] or "").strip()
    if len(control_planes) > 1 and mode == "none" and not endpoint_text:
        for host in control_planes[1:]:
            problems.append((host, PREFIX + "ha_mode", "api_endpoint",
                             "group control_plane has %d hosts (%s) but gpuforge_ha_mode is 'none' and "
                             "gpuforge_control_plane_endpoint is empty: the control planes that join (%s) need an API "
                             "endpoint they all share; set gpuforge_ha_mode to kube_vip (with gpuforge_vip and "
                             "kubernetes_control_plane_kube_vip_image) or external (with gpuforge_control_plane_endpoint, "
                             "the load balancer) in group_vars/k8s_cluster" % (
                                 len(control_planes), _hosts_text(control_planes), _hosts_text(control_planes[1:]))))

    endpoint = {"host": "", "port": port, "address": "", "source": ""}
    if endpoint_text:
        try:
            host_part, port_part = names.split_endpoint(endpoint_text, port)
            endpoint.update(host=host_part, port=port_part, source=PREFIX + "control_plane_endpoint")
        except ValueError:
            pass  # the variable rules report it
    elif mode == "kube_vip" and vip:
        endpoint.update(host=vip, source=PREFIX + "vip")
    elif control_planes:
        endpoint.update(host=nodes[control_planes[0]]["ip"], source="the first control plane's address")
    if endpoint["host"]:
        endpoint["address"] = names.join_endpoint(endpoint["host"], endpoint["port"])

    kubeconfig = str(cluster[PREFIX + "kubeconfig"] or "") or kubeconfig_default(hostvars, reference, name, playbook_dir)
    lab = values.value(reference, PREFIX + "lab")[1] if reference else False
    allow_http = values.value(reference, PREFIX + "allow_http_downloads")[1] if reference else False
    ignored = cluster[PREFIX + "kubeadm_ignore_preflight_errors"]
    model = {
        "name": name,
        "kubernetes_version": version,
        "kubernetes_minor": "%d.%d" % release[:2] if release else "",
        "pod_subnet": str(cluster[PREFIX + "pod_subnet"]),
        "service_subnet": str(cluster[PREFIX + "service_subnet"]),
        "dns_domain": str(cluster[PREFIX + "dns_domain"]),
        "cri_socket": str(cluster[PREFIX + "cri_socket"]),
        "kubeadm_ignore_preflight_errors": [str(c) for c in ignored] if isinstance(ignored, list) else [],
        "allow_http_downloads": bool(allow_http),
        "lab": bool(lab),
        "groups": {"cluster": hosts, "control_plane": control_planes, "workers": workers, "gpu_workers": gpu_workers},
        "first_control_plane": control_planes[0] if control_planes else None,
        "api": {
            "port": port,
            "ha_mode": mode,
            "vip": vip,
            "endpoint": endpoint,
            "kubeconfig": kubeconfig,
            "delegate_to": "localhost",
        },
        "nodes": nodes,
        "node_hosts": node_hosts,
    }
    return model, problems


def _hosts_text(names_, shown=6):
    names_ = list(names_)
    if len(names_) <= shown:
        return ", ".join(names_)
    return "%s and %d more" % (", ".join(names_[:shown]), len(names_) - shown)


def node_name_problems(nodes):
    """Node names that are not DNS-1123 subdomains, or that two hosts share."""
    problems = []
    by_name = {}
    for host, node in nodes.items():
        name = node["name"]
        variable = PREFIX + "node_name" if name != host else "inventory_hostname"
        reasons = names.dns1123_problems(name)
        if reasons:
            problems.append((host, variable, "node_name",
                             "node name %s (%s) is not a valid DNS-1123 name: it %s; Kubernetes node names must be "
                             "lowercase letters, digits, '-' and '.'%s" % (
                                 name, variable, " and ".join(reasons),
                                 "" if variable != "inventory_hostname" else
                                 " (or set gpuforge_node_name for this host)")))
        by_name.setdefault(name.lower(), []).append(host)
    for hosts in by_name.values():
        if len(hosts) < 2:
            continue
        for host in hosts:
            others = [h for h in hosts if h != host]
            name = nodes[host]["name"]
            problems.append((host, PREFIX + "node_name" if name != host else "inventory_hostname", "node_name_unique",
                             "node name %s is also the node name of %s (case ignored); every node needs its own "
                             "(gpuforge_node_name)" % (name, ", ".join(others))))
    return problems


def model_errors(model, problems):
    """The messages of ``problems``, each starting with its host: what the cluster_model role fails with."""
    return ["%s: %s" % (host, message) for host, _variable, _check, message in problems]


def node(model, host):
    """The model's entry of one host (KeyError with a clear text when the host is not a cluster host)."""
    nodes = model.get("nodes") if isinstance(model, Mapping) else None
    if not isinstance(nodes, Mapping) or host not in nodes:
        raise KeyError("%s is not a host of k8s_cluster (the cluster model knows %s)" % (
            host, ", ".join(sorted(nodes or {})) or "no host"))
    return nodes[host]
