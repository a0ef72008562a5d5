# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What a role's variables must be beyond their argument spec's types and choices: ranges, formats and the
rules between variables, of every role and of the cluster-wide variables (role ``cluster_model``).

``role_variable_errors(role, values)`` returns ``[(variable, message)]``. ``values`` maps variable names to
their values with the defaults applied; a rule may read the cluster-wide ``gpuforge_*`` ones as well as the
role's own (a kube-vip image is needed when ``gpuforge_ha_mode`` is kube_vip). The preflight inventory
stage runs every role's rules for every cluster host before any host is contacted; each role's validate
task runs its own through the filter gpuforge.cluster.role_variable_errors when the role is used alone.

Names and patterns come from names.py; each message starts with the variable it names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

from ansible_collections.gpuforge.cluster.plugins.module_utils import names

RULES = {}
# Ranges and formats per variable: min, max (numbers), max_length (text), format (ip, version, absolute_path).
CONSTRAINTS = {
    "gpuforge_api_port": {"min": 1, "max": 65535},
    "gpuforge_cluster_name": {"max_length": names.DNS1123_LABEL_MAX},
    "gpuforge_node_name": {"max_length": names.DNS1123_SUBDOMAIN_MAX},
    "gpuforge_node_ip": {"format": "ip"},
    "gpuforge_kubeadm_dir": {"format": "absolute_path"},
    "gpuforge_gpu_simulated_smi_xml": {"format": "absolute_path"},
    "common_apt_cache_valid_time": {"min": 0},
    "containerd_apt_cache_valid_time": {"min": 0},
    "containerd_config_path": {"format": "absolute_path"},
    "containerd_dropin_dir": {"format": "absolute_path"},
    "containerd_registry_config_dir": {"format": "absolute_path"},
    "containerd_cni_bin_dir": {"format": "absolute_path"},
    "containerd_cni_conf_dir": {"format": "absolute_path"},
    "kubernetes_node_apt_cache_valid_time": {"min": 0},
    "cni_wait_timeout": {"min": 0, "max": 86400},
    "cni_cilium_k8s_service_port": {"min": 1, "max": 65535},
    "kubernetes_drain_timeout": {"min": 1, "max": 86400},
    "kubernetes_drain_grace_period": {"min": -1, "max": 86400},
    "kubernetes_upgrade_node_ready_timeout": {"min": 1, "max": 86400},
    "nvidia_driver_apt_cache_valid_time": {"min": 0},
    "nvidia_driver_reboot_timeout": {"min": 60, "max": 86400},
    "nvidia_driver_smi_retries": {"min": 1, "max": 1000},
    "nvidia_driver_smi_delay": {"min": 1, "max": 3600},
    "nvidia_container_toolkit_apt_cache_valid_time": {"min": 0},
    "nvidia_container_toolkit_containerd_config": {"format": "absolute_path"},
    "nvidia_container_toolkit_containerd_dropin_dir": {"format": "absolute_path"},
    "nvidia_container_toolkit_runtime_binary": {"format": "absolute_path"},
    "nvidia_container_toolkit_nvidia_ctk": {"format": "absolute_path"},
    "nvidia_container_toolkit_cdi_spec": {"format": "absolute_path"},
    "preflight_min_cpus_control_plane": {"min": 1, "max": 4096},
    "preflight_min_cpus_worker": {"min": 1, "max": 4096},
    "preflight_min_memory_mib": {"min": 0, "max": 64 * 1024 * 1024},
    "preflight_min_disk_gib": {"min": 0, "max": 1024 * 1024},
    "preflight_max_clock_skew_s": {"min": 0, "max": 3600},
    "preflight_min_python_version": {"format": "version"},
    "preflight_disk_path": {"format": "absolute_path"},
}


def rule(role, reads=None):
    """Registers a rule function of ``role``; ``reads``: the variables it judges (default: all of the role's).
    Preflight does not run a rule one of whose variables failed its own check on the host (a value that is not
    even of its type would only make the rule say something misleading)."""
    def register(function):
        function.reads = tuple(reads) if reads else None
        RULES.setdefault(role, []).append(function)
        return function
    return register


def _list(value):
    return list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else []


def _text(value):
    return "" if value is None else str(value).strip()


def _quote(value):
    return repr(value) if isinstance(value, str) else str(value)


def downloads(values, variables, what):
    """download_problems of each of ``variables`` that is set."""
    errors = []
    for variable in variables:
        url = _text(values.get(variable))
        if url:
            errors.extend(download_problems(variable, url, values, what))
    return errors


def download_problems(variable, url, values, what="downloads"):
    """An http(s)/file URL, plain http only when gpuforge_allow_http_downloads says so."""
    scheme = names.url_scheme(url)
    if scheme is None:
        return [(variable, "%s %r is not an https, http or file URL" % (variable, url))]
    if scheme == "http" and not values.get("gpuforge_allow_http_downloads"):
        return [(variable, "%s %r is plain http: %s must come over https (set gpuforge_allow_http_downloads: true "
                           "only for a site mirror without TLS; the SHA-256 still protects them)" % (variable, url, what))]
    return []


def release_problems(variable, value, what="a release such as '1.37.2' (X.Y.Z, no 'v')"):
    if names.release(value) is not None:
        return []
    hint = ""
    if isinstance(value, float) and not isinstance(value, bool):
        hint = "; YAML read the number %s: quote the release" % value
    elif isinstance(value, str) and value.strip().lower().startswith("v") and names.release(value.strip()[1:]):
        hint = "; drop the 'v'"
    return [(variable, "%s %s is not %s%s" % (variable, _quote(value), what, hint))]


def pod_network_problem(value):
    """Why a text cannot be the pod network the CNI sets up (one IPv4 /8 to /24 network), or ''."""
    text = _text(value)
    if "/" not in text:
        return "%r is not a network in CIDR notation (address/prefix length)" % text
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        return "%r is not a valid network (%s)" % (text, exc)
    if net.version != 4:
        return "%r is not an IPv4 network (the CNI sets up one IPv4 pod network)" % text
    if not 8 <= net.prefixlen <= 24:
        return ("%r is a /%d: the pod network must be between a /8 and a /24 (each node takes a /24 of it with "
                "Flannel and Cilium, /26 blocks with Calico)" % (text, net.prefixlen))
    return ""


# ---------------------------------------------------------------------------------------------
# The cluster (roles/cluster_model)


P = "gpuforge_"


@rule("cluster_model", reads=(P + "cluster_name",))
def cluster_name(values):
    name = _text(values.get(P + "cluster_name"))
    reasons = names.dns1123_problems(name, label=True)
    if reasons:
        return [(P + "cluster_name", "%scluster_name %r is not a DNS-1123 label: it %s (kubeadm and the kubeconfig use "
                                     "it as a name)" % (P, name, " and ".join(reasons)))]
    return []


@rule("cluster_model", reads=(P + "kubernetes_version",))
def kubernetes_version(values):
    return release_problems(P + "kubernetes_version", values.get(P + "kubernetes_version"))


def _subnets(values):
    return {kind: names.network(values.get(P + kind)) for kind in ("pod_subnet", "service_subnet")
            if names.network(values.get(P + kind)) is not None}


@rule("cluster_model", reads=(P + "pod_subnet", P + "service_subnet", "cni_plugin"))
def subnets(values):
    errors = []
    for kind in ("pod_subnet", "service_subnet"):
        value = values.get(P + kind)
        if names.network(value) is None:
            errors.append((P + kind, "%s%s %r is not a network in CIDR notation (e.g. 10.244.0.0/16, host bits zero)"
                           % (P, kind, value)))
    found = _subnets(values)
    if len(found) == 2:
        pod, service = found["pod_subnet"], found["service_subnet"]
        if pod.version != service.version:
            errors.append((P + "service_subnet", "%sservice_subnet %s is IPv%d but %spod_subnet %s is IPv%d: both must "
                                                 "be of one IP family (dual-stack is not supported)"
                           % (P, service, service.version, P, pod, pod.version)))
        elif pod.overlaps(service):
            errors.append((P + "service_subnet", "%sservice_subnet %s overlaps %spod_subnet %s" % (P, service, P, pod)))
    if "service_subnet" in found and found["service_subnet"].version == 4 and found["service_subnet"].prefixlen < 12:
        errors.append((P + "service_subnet", "%sservice_subnet %s is larger than /12, the most the API server allows"
                       % (P, found["service_subnet"])))
    if "pod_subnet" in found and values.get("cni_plugin", "calico") != "none":
        why = pod_network_problem(values.get(P + "pod_subnet"))
        if why:
            errors.append((P + "pod_subnet", "%spod_subnet %s; the cni role (cni_plugin %s) would refuse it after "
                                             "kubeadm init built the cluster" % (P, why, values.get("cni_plugin", "calico"))))
    return errors


@rule("cluster_model", reads=(P + "dns_domain",))
def dns_domain(values):
    domain = _text(values.get(P + "dns_domain"))
    if not names.is_dns1123_subdomain(domain):
        return [(P + "dns_domain", "%sdns_domain %r is not a DNS domain" % (P, domain))]
    return []


@rule("cluster_model", reads=(P + "api_port", P + "ha_mode", P + "control_plane_endpoint", P + "vip", P + "pod_subnet",
                              P + "service_subnet"))
def endpoint(values):
    errors = []
    port = values.get(P + "api_port")
    port = port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else 6443
    mode = values.get(P + "ha_mode")
    text = _text(values.get(P + "control_plane_endpoint"))
    endpoint_host = None
    if text:
        try:
            endpoint_host, _ = names.split_endpoint(text, port)
        except ValueError as exc:
            errors.append((P + "control_plane_endpoint", "%scontrol_plane_endpoint %r is not host or host:port (%s)"
                           % (P, text, exc)))
    elif mode == "external":
        errors.append((P + "control_plane_endpoint", "%sha_mode external needs %scontrol_plane_endpoint, the load "
                                                     "balancer's host[:port]" % (P, P)))
    vip = _text(values.get(P + "vip"))
    if mode == "kube_vip":
        if not names.is_ip(vip):
            errors.append((P + "vip", "%sha_mode kube_vip needs %svip, an unused IP address in the control planes' "
                                      "subnet (got %r)" % (P, P, vip)))
        if endpoint_host and names.is_ip(vip) and names.is_ip(endpoint_host) and endpoint_host != vip:
            errors.append((P + "control_plane_endpoint", "%scontrol_plane_endpoint %s is not %svip %s: with kube_vip "
                                                         "the endpoint is the VIP (leave %scontrol_plane_endpoint empty)"
                           % (P, text, P, vip, P)))
    elif vip:
        errors.append((P + "vip", "%svip is set but %sha_mode is %s, not kube_vip" % (P, P, mode)))
    for kind, address in (("vip", vip), ("control_plane_endpoint", endpoint_host)):
        if address and names.is_ip(address):
            for subnet_name, net in _subnets(values).items():
                if names.ip(address) in net:
                    errors.append((P + kind, "%s%s %s is inside %s%s %s" % (P, kind, address, P, subnet_name, net)))
    return errors


@rule("cluster_model", reads=(P + "node_name",))
def node_name(values):
    name = _text(values.get(P + "node_name"))
    if name and names.dns1123_problems(name):
        return [(P + "node_name", "%snode_name %r is not a lowercase DNS-1123 name: it %s"
                 % (P, name, " and ".join(names.dns1123_problems(name))))]
    return []


@rule("cluster_model", reads=(P + "cri_socket",))
def cri_socket(values):
    socket = _text(values.get(P + "cri_socket"))
    if not socket.startswith("unix:///"):
        return [(P + "cri_socket", "%scri_socket %r is not a unix:/// socket URL" % (P, socket))]
    return []


# What a lab of containers needs and a real host must not have: each hides a problem on real hardware.
LAB_SETTINGS = (
    (P + "kubeadm_ignore_preflight_errors", lambda v: bool(_list(v)),
     "makes kubeadm init and join ignore the errors of its preflight checks"),
    ("containerd_restrict_oom_score_adj", lambda v: v is True,
     "caps the OOM score adjustment containerd gives containers (for a runtime without CAP_SYS_RESOURCE)"),
    ("kubernetes_control_plane_kubelet_config", lambda v: isinstance(v, Mapping) and v.get("failCgroupV1") is False,
     "has failCgroupV1: false, a kubelet on cgroup v1"),
    ("kubernetes_control_plane_kubelet_config", lambda v: isinstance(v, Mapping) and v.get("failSwapOn") is False,
     "has failSwapOn: false, a kubelet beside active swap"),
)


@rule("cluster_model", reads=(P + "lab", P + "allow_lab_settings", P + "kubeadm_ignore_preflight_errors"))
def lab_settings(values):
    errors = []
    ignored = [str(c) for c in _list(values.get(P + "kubeadm_ignore_preflight_errors"))]
    if any(c.strip().lower() == "all" for c in ignored):
        errors.append((P + "kubeadm_ignore_preflight_errors",
                       "%skubeadm_ignore_preflight_errors names 'all': name the checks to ignore (e.g. "
                       "SystemVerification), so that the others still stop a node that cannot work" % P))
    if values.get(P + "lab") is True or values.get(P + "allow_lab_settings") is True:
        return errors
    for variable, is_set, what in LAB_SETTINGS:
        if variable in values and is_set(values.get(variable)):
            errors.append((variable, "%s %s: a lab setting, and %slab is false; set it only in a lab's "
                                     "inventory (or %sallow_lab_settings: true, with a reason)" % (variable, what, P, P)))
    return errors


@rule("cluster_model", reads=(P + "upgrade_worker_batch",))
def upgrade_worker_batch(values):
    batch = _text(values.get(P + "upgrade_worker_batch"))
    if not re.match(r"^[1-9][0-9]*%?$", batch) or (batch.endswith("%") and int(batch[:-1]) > 100):
        return [(P + "upgrade_worker_batch", "%supgrade_worker_batch %s must be a number of workers (1 or more) or a "
                                             "percentage of them (1%% to 100%%)" % (P, batch))]
    return []


# ---------------------------------------------------------------------------------------------
# Node layer


@rule("common")
def common(values):
    errors = []
    for number, server in enumerate(_list(values.get("common_ntp_servers"))):
        host = _text(server.get("host")) if isinstance(server, Mapping) else ""
        if not (names.is_hostname(host) or names.is_ip(host)):
            errors.append(("common_ntp_servers", "common_ntp_servers[%d].host %r is not a host name or an IP address"
                           % (number, host)))
    hostname = _text(values.get("common_hostname"))
    if hostname and not names.is_hostname(hostname):
        errors.append(("common_hostname", "common_hostname %r is not a host name" % hostname))
    for module in _list(values.get("common_kernel_modules")):
        if not module or any(c in str(module) for c in " /\t"):
            errors.append(("common_kernel_modules", "common_kernel_modules: %r is not a kernel module name" % (module,)))
    sysctls = values.get("common_sysctls") or {}
    if isinstance(sysctls, Mapping):
        bad = sorted(str(k) for k in sysctls if not str(k) or " " in str(k) or "/" in str(k).strip("/"))
        if bad:
            errors.append(("common_sysctls", "common_sysctls: %s are not sysctl names (dotted, e.g. "
                                             "net.ipv4.ip_forward)" % ", ".join(bad)))
    if not _text(values.get("common_etc_hosts_group")) and values.get("common_manage_etc_hosts"):
        errors.append(("common_etc_hosts_group", "common_etc_hosts_group is empty while common_manage_etc_hosts is "
                                                 "true: name the group whose hosts go into /etc/hosts"))
    return errors


# ---------------------------------------------------------------------------------------------
# Container runtime layer


@rule("containerd")
def containerd(values):
    errors = []
    method = values.get("containerd_install_method")
    version = values.get("containerd_version")
    if method == "archive":
        if names.release(version) is None:
            errors.append(("containerd_version", "containerd_install_method archive needs containerd_version as X.Y.Z "
                                                 "(the release, e.g. 2.2.9), got %r" % (version,)))
        if not values.get("containerd_archive_dir") and not values.get("containerd_archive_url"):
            errors.append(("containerd_archive_dir", "containerd_install_method archive needs containerd_archive_dir "
                                                     "(an offline folder) or containerd_archive_url (a mirror)"))
        if not values.get("containerd_archive_sha256"):
            errors.append(("containerd_archive_sha256", "containerd_install_method archive needs "
                                                        "containerd_archive_sha256, the SHA-256 of the release archive "
                                                        "(every downloaded or copied archive is checked)"))
    elif method == "distro" and _text(version) and not _text(version)[0].isdigit():
        errors.append(("containerd_version", "containerd_version %r is not a package version (it starts with a digit, "
                                             "e.g. 1.6.20~ds1-1+deb12u1; empty keeps the repository's)" % (version,)))
    checksum = _text(values.get("containerd_archive_sha256"))
    if checksum and not names.is_sha256(checksum):
        errors.append(("containerd_archive_sha256", "containerd_archive_sha256 %r is not a SHA-256 (64 hex digits)"
                       % (checksum,)))
    url = _text(values.get("containerd_archive_url"))
    if url:
        errors.extend(download_problems("containerd_archive_url", url, values, "release archives"))
    image = _text(values.get("containerd_sandbox_image"))
    if image and not names.is_image(image):
        errors.append(("containerd_sandbox_image", "containerd_sandbox_image %r is not an image reference "
                                                   "(registry/repository:tag)" % image))
    archives = _list(values.get("containerd_image_archives"))
    archives_dir = _text(values.get("containerd_image_archives_dir"))
    if archives_dir and not archives_dir.startswith("/"):
        errors.append(("containerd_image_archives_dir", "containerd_image_archives_dir %r is not an absolute path "
                                                        "(a folder on the controller)" % archives_dir))
    if archives and not archives_dir:
        errors.append(("containerd_image_archives", "containerd_image_archives needs containerd_image_archives_dir, "
                                                    "the folder on the controller that holds them"))
    bad = [a for a in archives if not isinstance(a, str) or not a or a.startswith("/") or ".." in a.split("/")]
    if bad:
        errors.append(("containerd_image_archives", "containerd_image_archives names paths inside "
                                                    "containerd_image_archives_dir, as its SHA256SUMS lists them, "
                                                    "got %s" % ", ".join(repr(a) for a in bad)))
    mirrors = [m for m in _list(values.get("containerd_registry_mirrors")) if isinstance(m, Mapping)]
    registries = [m.get("registry") for m in mirrors]
    twice = sorted({str(r) for r in registries if registries.count(r) > 1})
    if twice:
        errors.append(("containerd_registry_mirrors", "containerd_registry_mirrors lists %s more than once"
                       % ", ".join(twice)))
    for number, mirror in enumerate(mirrors):
        registry = str(mirror.get("registry") or "")
        if not names.is_registry_host(registry):
            errors.append(("containerd_registry_mirrors", "containerd_registry_mirrors[%d].registry %r is not a "
                                                          "registry host[:port] or _default" % (number, registry)))
        endpoints = _list(mirror.get("endpoints"))
        bad = [e for e in endpoints if not names.HTTP_URL_RE.match(str(e))]
        if not endpoints or bad:
            errors.append(("containerd_registry_mirrors", "containerd_registry_mirrors[%d] (%s) needs endpoints that are "
                                                          "http(s) URLs%s" % (number, registry, ", got %s" % bad if bad else "")))
    return errors


# ---------------------------------------------------------------------------------------------
# GPU node layer


@rule("nvidia_driver")
def nvidia_driver(values):
    errors = []
    branch = _text(values.get("nvidia_driver_branch"))
    version = _text(values.get("nvidia_driver_version"))
    if not names.is_driver_branch(branch):
        errors.append(("nvidia_driver_branch", "nvidia_driver_branch %s is not a driver branch such as '580' (its major "
                                               "number)%s" % (_quote(values.get("nvidia_driver_branch")),
                                                              "" if isinstance(values.get("nvidia_driver_branch"), str)
                                                              else "; quote it")))
    if version and not names.is_driver_version(version):
        errors.append(("nvidia_driver_version", "nvidia_driver_version %s is not a driver version such as "
                                                "'580.95.05' (empty: the newest of nvidia_driver_branch)"
                       % _quote(values.get("nvidia_driver_version"))))
    key, cert = _text(values.get("nvidia_driver_secure_boot_mok_key")), _text(values.get("nvidia_driver_secure_boot_mok_cert"))
    if bool(key) != bool(cert):
        errors.append(("nvidia_driver_secure_boot_mok_key", "set both nvidia_driver_secure_boot_mok_key and "
                                                            "nvidia_driver_secure_boot_mok_cert, or neither (got key %r, "
                                                            "certificate %r)" % (key, cert)))
    errors.extend(downloads(values, ("nvidia_driver_cuda_repo_url", "nvidia_driver_cuda_repo_key_url"),
                            "driver packages and keys"))
    return errors


@rule("nvidia_container_toolkit")
def nvidia_container_toolkit(values):
    errors = []
    mode = values.get("nvidia_container_toolkit_install_mode")
    if mode == "package_dir" and not _text(values.get("nvidia_container_toolkit_package_dir")):
        errors.append(("nvidia_container_toolkit_package_dir", "nvidia_container_toolkit_install_mode package_dir needs "
                                                               "nvidia_container_toolkit_package_dir (a folder of .deb "
                                                               "or .rpm files)"))
    if mode != "configure_only" and not _list(values.get("nvidia_container_toolkit_packages")):
        errors.append(("nvidia_container_toolkit_packages", "nvidia_container_toolkit_install_mode %s needs a non-empty "
                                                            "nvidia_container_toolkit_packages" % mode))
    version = _text(values.get("nvidia_container_toolkit_version"))
    if version and not version[0].isdigit():
        errors.append(("nvidia_container_toolkit_version", "nvidia_container_toolkit_version %r is not a package version "
                                                           "such as '1.20.2-1'" % version))
    name = _text(values.get("nvidia_container_toolkit_containerd_dropin_name"))
    if "/" in name or not name.endswith(".toml") or name == ".toml":
        errors.append(("nvidia_container_toolkit_containerd_dropin_name", "nvidia_container_toolkit_containerd_dropin_name "
                                                                          "%r is not a file name ending in .toml" % name))
    if mode == "repo":
        errors.extend(downloads(values, ["nvidia_container_toolkit_%s_%s_url" % (kind, what) for kind in ("apt", "yum")
                                         for what in ("repo", "gpg_key")], "packages and signing keys"))
    return errors


# ---------------------------------------------------------------------------------------------
# Kubernetes layer


@rule("kubernetes_node")
def kubernetes_node(values):
    errors = []
    version = values.get("kubernetes_node_version")
    if _text(version):
        errors.extend(release_problems("kubernetes_node_version", version,
                                       "a release such as '1.37.2' (X.Y.Z, no 'v'; empty: gpuforge_kubernetes_version)"))
    method = values.get("kubernetes_node_install_method")
    if method == "binaries":
        if not values.get("kubernetes_node_binaries_dir"):
            errors.append(("kubernetes_node_binaries_dir", "kubernetes_node_install_method binaries needs "
                                                           "kubernetes_node_binaries_dir (the folder of kubeadm, kubelet "
                                                           "and kubectl)"))
        sums = values.get("kubernetes_node_binaries_sha256") or {}
        sums = sums if isinstance(sums, Mapping) else {}
        missing = [b for b in ("kubeadm", "kubelet", "kubectl") if not _text(sums.get(b))]
        if missing:
            errors.append(("kubernetes_node_binaries_sha256", "kubernetes_node_install_method binaries needs "
                                                              "kubernetes_node_binaries_sha256 with the SHA-256 of %s "
                                                              "(every copied binary is checked)" % ", ".join(missing)))
        bad = sorted(b for b, s in sums.items() if _text(s) and not names.is_sha256(_text(s)))
        if bad:
            errors.append(("kubernetes_node_binaries_sha256", "kubernetes_node_binaries_sha256: %s is not a SHA-256 "
                                                              "(64 hex digits)" % ", ".join(bad)))
        unknown = sorted(str(b) for b in sums if b not in ("kubeadm", "kubelet", "kubectl"))
        if unknown:
            errors.append(("kubernetes_node_binaries_sha256", "kubernetes_node_binaries_sha256 has unknown keys %s "
                                                              "(kubeadm, kubelet, kubectl)" % ", ".join(unknown)))
    if method == "repo":
        errors.extend(downloads(values, ["kubernetes_node_%s_%s_url" % (kind, what) for kind in ("apt", "yum")
                                         for what in ("repo", "gpg_key")], "packages and signing keys"))
    flags = values.get("kubernetes_node_kubelet_extra_args") or {}
    if isinstance(flags, Mapping):
        bad = [str(k) for k in flags if not re.match(r"^-{0,2}[a-z0-9][a-z0-9-]*$", str(k))]
        if bad:
            errors.append(("kubernetes_node_kubelet_extra_args", "the keys of kubernetes_node_kubelet_extra_args must be "
                                                                 "kubelet flag names (got %s)" % ", ".join(bad)))
    return errors


@rule("kubernetes_control_plane")
def kubernetes_control_plane(values):
    errors = []
    p = "kubernetes_control_plane_"
    if values.get("gpuforge_ha_mode") == "kube_vip":
        image = _text(values.get(p + "kube_vip_image"))
        if not image:
            errors.append((p + "kube_vip_image", "gpuforge_ha_mode kube_vip needs %skube_vip_image, the kube-vip image "
                                                 "(repository:tag) in the site's registry" % p))
        elif not names.is_image(image):
            errors.append((p + "kube_vip_image", "%skube_vip_image %r is not an image reference" % (p, image)))
    interface = _text(values.get(p + "vip_interface"))
    if interface and (len(interface) > 15 or any(c in interface for c in " /:")):
        errors.append((p + "vip_interface", "%svip_interface %r is not a network interface name" % (p, interface)))
    for san in _list(values.get(p + "api_sans")):
        if not (names.is_ip(san) or names.is_hostname(str(san).lstrip("*."))):
            errors.append((p + "api_sans", "%sapi_sans: %r is neither an IP address nor a DNS name" % (p, san)))
    gates = values.get(p + "feature_gates") or {}
    bad = sorted(str(k) for k, v in gates.items() if not isinstance(v, bool)) if isinstance(gates, Mapping) else []
    if bad:
        errors.append((p + "feature_gates", "%sfeature_gates: %s must be true or false" % (p, ", ".join(bad))))
    repository = _text(values.get(p + "image_repository"))
    if repository and not names.is_registry(repository):
        errors.append((p + "image_repository", "%simage_repository %r is not a registry host[:port] with an optional "
                                               "path (no scheme, no trailing slash)" % (p, repository)))
    if not names.is_duration(values.get(p + "join_token_ttl")):
        errors.append((p + "join_token_ttl", "%sjoin_token_ttl %r is not a duration above zero such as 30m or 1h "
                                             "(0 would make tokens that never expire)" % (p, _text(values.get(p + "join_token_ttl")))))
    return errors


@rule("cni")
def cni(values):
    errors = []
    if values.get("cni_plugin", "calico") == "none":
        return errors
    if not _text(values.get("cni_bundle_dir")):
        errors.append(("cni_bundle_dir", "cni_bundle_dir is empty: it must name the folder of the CNI's upstream files on "
                                         "the controller (tests/k8s/cni_bundle.sh lays it out), or cni_plugin must be none"))
    registry = _text(values.get("cni_image_registry"))
    if registry and not names.is_registry(registry):
        errors.append(("cni_image_registry", "cni_image_registry %r must be a registry host[:port] with an optional path "
                                             "(for example mirror.example.internal:5000/cni), without a scheme or a "
                                             "trailing slash; empty keeps the upstream registry" % registry))
    mtu = values.get("cni_calico_mtu")
    if isinstance(mtu, int) and not isinstance(mtu, bool) and mtu != 0 and not 576 <= mtu <= 9000:
        errors.append(("cni_calico_mtu", "cni_calico_mtu %d must be 0 (auto-detect) or 576 to 9000" % mtu))
    if values.get("cni_cilium_kube_proxy_replacement") and not _text(values.get("cni_cilium_k8s_service_host")):
        errors.append(("cni_cilium_k8s_service_host", "cni_cilium_kube_proxy_replacement needs cni_cilium_k8s_service_host "
                                                      "(the API server's address: without kube-proxy, Cilium cannot "
                                                      "reach it through the kubernetes Service)"))
    for variable in ("cni_calico_version", "cni_flannel_version"):
        value = _text(values.get(variable))
        if not (value.startswith("v") and names.release(value[1:])):
            errors.append((variable, "%s %r is not a release tag such as v3.28.5" % (variable, value)))
    if names.release(_text(values.get("cni_cilium_version"))) is None:
        errors.extend(release_problems("cni_cilium_version", values.get("cni_cilium_version"),
                                       "a chart version such as '1.18.6'"))
    return errors


@rule("kubernetes_node_objects")
def kubernetes_node_objects(values):
    errors = []
    labels = values.get("kubernetes_node_objects_labels") or {}
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            if not names.is_label_key(str(key)):
                errors.append(("kubernetes_node_objects_labels", "kubernetes_node_objects_labels: %r is not a label key "
                                                                 "([prefix/]name)" % (key,)))
            elif not names.is_label_value(text):
                errors.append(("kubernetes_node_objects_labels", "kubernetes_node_objects_labels: %s: %r is not a label "
                                                                 "value (63 characters of [A-Za-z0-9._-], alphanumeric "
                                                                 "at both ends)" % (key, text)))
    for number, taint in enumerate(_list(values.get("kubernetes_node_objects_taints"))):
        if not isinstance(taint, Mapping) or not names.is_label_key(str(taint.get("key") or "")):
            errors.append(("kubernetes_node_objects_taints", "kubernetes_node_objects_taints[%d] needs a key that is a "
                                                             "label key" % number))
        elif taint.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errors.append(("kubernetes_node_objects_taints", "kubernetes_node_objects_taints[%d].effect %r is not "
                                                             "NoSchedule, PreferNoSchedule or NoExecute"
                           % (number, taint.get("effect"))))
    name = _text(values.get("kubernetes_node_objects_runtime_class_name"))
    if not names.is_dns1123_subdomain(name):
        errors.append(("kubernetes_node_objects_runtime_class_name", "kubernetes_node_objects_runtime_class_name %r is "
                                                                     "not a DNS-1123 name" % name))
    return errors


@rule("preflight")
def preflight(values):
    errors = []
    groups = values.get("preflight_required_groups")
    for group in _list(groups):
        if not isinstance(group, str) or not group or any(c in group for c in " :,&!*"):
            errors.append(("preflight_required_groups", "preflight_required_groups: %r is not a group name" % (group,)))
    return errors


def role_variable_errors(role, values, constraints=True, failed=()):
    """[(variable, message)] of a role's constraints (unless preflight checks them with the types) and rules;
    ``failed``: variables that failed their own checks (the rules reading one of them are not run)."""
    errors = []
    failed = set(failed)
    for variable, constraint in CONSTRAINTS.items() if constraints else ():
        if not variable.startswith(role + "_") and not (role == "cluster_model" and variable.startswith("gpuforge_")):
            continue
        if variable not in values:
            continue
        errors.extend(constraint_errors(variable, values.get(variable), constraint))
    for function in RULES.get(role, []):
        reads = set(function.reads) if function.reads else {n for n in values if n.startswith(role + "_")}
        if reads & failed:
            continue
        errors.extend(function(values))
    return errors


def constraint_errors(variable, value, constraint):
    from ansible_collections.gpuforge.cluster.plugins.module_utils.argspec import check_constraint

    return [(variable, "%s %s" % (variable, text)) for _check, text in check_constraint(value, constraint, value)]
