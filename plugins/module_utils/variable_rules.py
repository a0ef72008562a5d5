# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Rules between a role's variables that its argument spec cannot express.

One function per role takes the role's variables (defaults applied) and returns
``[(variable, message)]``. The preflight inventory check runs them for every cluster host
before any host is contacted; each role's validate tasks run the same rules (filter
gpuforge.cluster.role_variable_errors) when the role is used on its own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

RELEASE_RE = re.compile(r"^\d+\.\d+\.\d+$")
URL_RE = re.compile(r"^(https?|file)://\S+$")
HTTP_RE = re.compile(r"^https?://[^/\s]+")
REGISTRY_RE = re.compile(r"^(_default|[A-Za-z0-9][A-Za-z0-9.-]*(:\d+)?)$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def _list(value):
    return list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else []


def containerd(values):
    errors = []
    if values.get("containerd_install_method") == "archive":
        version = values.get("containerd_version") or ""
        if not RELEASE_RE.match(str(version)):
            errors.append(("containerd_version", "containerd_install_method archive needs containerd_version as X.Y.Z "
                                                 "(the release, e.g. 2.2.9), got %r" % (version,)))
        if not values.get("containerd_archive_dir") and not values.get("containerd_archive_url"):
            errors.append(("containerd_archive_dir", "containerd_install_method archive needs containerd_archive_dir "
                                                     "(an offline folder) or containerd_archive_url (a mirror)"))
    checksum = values.get("containerd_archive_sha256") or ""
    if checksum and not SHA256_RE.match(str(checksum)):
        errors.append(("containerd_archive_sha256", "containerd_archive_sha256 %r is not a SHA-256 (64 hex digits)"
                       % (checksum,)))
    url = values.get("containerd_archive_url") or ""
    if url and not URL_RE.match(str(url)):
        errors.append(("containerd_archive_url", "containerd_archive_url %r is not an http(s) or file URL" % (url,)))
    mirrors = [m for m in _list(values.get("containerd_registry_mirrors")) if isinstance(m, Mapping)]
    registries = [m.get("registry") for m in mirrors]
    twice = sorted({str(r) for r in registries if registries.count(r) > 1})
    if twice:
        errors.append(("containerd_registry_mirrors", "containerd_registry_mirrors lists %s more than once"
                       % ", ".join(twice)))
    for number, mirror in enumerate(mirrors):
        registry = str(mirror.get("registry") or "")
        if not REGISTRY_RE.match(registry):
            errors.append(("containerd_registry_mirrors", "containerd_registry_mirrors[%d].registry %r is not a "
                                                          "registry host[:port] or _default" % (number, registry)))
        endpoints = _list(mirror.get("endpoints"))
        bad = [e for e in endpoints if not HTTP_RE.match(str(e))]
        if not endpoints or bad:
            errors.append(("containerd_registry_mirrors", "containerd_registry_mirrors[%d] (%s) needs endpoints that are "
                                                          "http(s) URLs%s" % (number, registry, ", got %s" % bad if bad else "")))
    return errors


def kubernetes_node(values):
    errors = []
    version = values.get("kubernetes_node_version")
    if not RELEASE_RE.match(str(version or "")):
        errors.append(("kubernetes_node_version", "kubernetes_node_version %r is not a release such as '1.37.2' "
                                                  "(X.Y.Z, no 'v')" % (version,)))
    node_ip = values.get("kubernetes_node_ip") or ""
    if node_ip:
        try:
            ipaddress.ip_address(str(node_ip))
        except ValueError:
            errors.append(("kubernetes_node_ip", "kubernetes_node_ip %r is not an IP address" % (node_ip,)))
    if values.get("kubernetes_node_install_method") == "binaries" and not values.get("kubernetes_node_binaries_dir"):
        errors.append(("kubernetes_node_binaries_dir", "kubernetes_node_install_method binaries needs "
                                                       "kubernetes_node_binaries_dir (the folder of kubeadm, kubelet "
                                                       "and kubectl)"))
    return errors


DNS1123_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DURATION_RE = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def network(value):
    """ipaddress network of a CIDR string, or None."""
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def split_endpoint(value, default_port=6443):
    """(host, port) of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; ValueError when malformed."""
    text = str(value or "").strip()
    if not text:
        raise ValueError("empty")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        ipaddress.IPv6Address(host)
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError("junk after ]")
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:
        ipaddress.IPv6Address(text)
        host, port = text, None
    else:
        host, port = text, None
    if not (_is_ip(host) or HOSTNAME_RE.match(host)):
        raise ValueError("%r is neither an IP address nor a DNS name" % host)
    if port is None:
        return host, int(default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("port %r is not 1-65535" % port)
    return host, int(port)


def _is_ip(value):
    try:
        ipaddress.ip_address(str(value))
        return True
    except ValueError:
        return False


def kubernetes_control_plane(values):
    errors = []
    p = "kubernetes_control_plane_"
    version = values.get(p + "version")
    if not RELEASE_RE.match(str(version or "")):
        errors.append((p + "version", "%sversion %r is not a release such as '1.37.2' (X.Y.Z, no 'v')" % (p, version)))
    subnets = {}
    for name in ("pod_subnet", "service_subnet"):
        value = values.get(p + name)
        net = network(value)
        if net is None:
            errors.append((p + name, "%s%s %r is not a network in CIDR notation (e.g. 10.244.0.0/16, host bits zero)"
                           % (p, name, value)))
        else:
            subnets[name] = net
    if len(subnets) == 2 and subnets["pod_subnet"].version == subnets["service_subnet"].version \
            and subnets["pod_subnet"].overlaps(subnets["service_subnet"]):
        errors.append((p + "service_subnet", "%sservice_subnet %s overlaps %spod_subnet %s"
                       % (p, subnets["service_subnet"], p, subnets["pod_subnet"])))
    if "service_subnet" in subnets and subnets["service_subnet"].version == 4 and subnets["service_subnet"].prefixlen < 12:
        errors.append((p + "service_subnet", "%sservice_subnet %s is larger than /12, the most the API server allows"
                       % (p, subnets["service_subnet"])))
    domain = str(values.get(p + "dns_domain") or "")
    if not DNS1123_RE.match(domain):
        errors.append((p + "dns_domain", "%sdns_domain %r is not a DNS domain" % (p, domain)))
    port = values.get(p + "api_port")
    if isinstance(port, str) and port.strip().isdigit():  # inventory strings, as Ansible's int conversion takes them
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        errors.append((p + "api_port", "%sapi_port %r is not a port (1-65535)" % (p, port)))
        port = 6443
    mode = values.get(p + "ha_mode")
    endpoint = values.get(p + "endpoint") or ""
    endpoint_host = None
    if endpoint:
        try:
            endpoint_host, _ = split_endpoint(endpoint, port)
        except ValueError as exc:
            errors.append((p + "endpoint", "%sendpoint %r is not host or host:port (%s)" % (p, endpoint, exc)))
    elif mode == "external":
        errors.append((p + "endpoint", "%sha_mode external needs %sendpoint, the load balancer's host[:port]" % (p, p)))
    vip = values.get(p + "vip") or ""
    if mode == "kube_vip":
        if not _is_ip(vip):
            errors.append((p + "vip", "%sha_mode kube_vip needs %svip, an unused IP address in the control planes' "
                                      "subnet (got %r)" % (p, p, vip)))
        if not values.get(p + "kube_vip_image"):
            errors.append((p + "kube_vip_image", "%sha_mode kube_vip needs %skube_vip_image, the kube-vip image "
                                                 "(repository:tag) in the site's registry" % (p, p)))
        if endpoint_host and _is_ip(vip) and _is_ip(endpoint_host) and endpoint_host != vip:
            errors.append((p + "endpoint", "%sendpoint %s is not %svip %s: with kube_vip the endpoint is the VIP "
                                           "(leave %sendpoint empty)" % (p, endpoint, p, vip, p)))
    elif vip:
        errors.append((p + "vip", "%svip is set but %sha_mode is %s, not kube_vip" % (p, p, mode)))
    for name, address in (("vip", vip), ("endpoint", endpoint_host)):
        if address and _is_ip(address):
            for subnet_name, net in subnets.items():
                if ipaddress.ip_address(address) in net:
                    errors.append((p + name, "%s%s %s is inside %s%s %s" % (p, name, address, p, subnet_name, net)))
    advertise = values.get(p + "advertise_address") or ""
    if advertise and not _is_ip(advertise):
        errors.append((p + "advertise_address", "%sadvertise_address %r is not an IP address" % (p, advertise)))
    for san in _list(values.get(p + "api_sans")):
        if not (_is_ip(san) or HOSTNAME_RE.match(str(san).lstrip("*."))):
            errors.append((p + "api_sans", "%sapi_sans: %r is neither an IP address nor a DNS name" % (p, san)))
    gates = values.get(p + "feature_gates") or {}
    bad = sorted(str(k) for k, v in gates.items() if not isinstance(v, bool)) if isinstance(gates, Mapping) else []
    if bad:
        errors.append((p + "feature_gates", "%sfeature_gates: %s must be true or false" % (p, ", ".join(bad))))
    name = values.get(p + "node_name") or ""
    if name and not DNS1123_RE.match(str(name)):
        errors.append((p + "node_name", "%snode_name %r is not a lowercase DNS-1123 name" % (p, name)))
    ttl = str(values.get(p + "join_token_ttl") or "")
    if not DURATION_RE.match(ttl) or not any(c.isdigit() and c != "0" for c in ttl):
        errors.append((p + "join_token_ttl", "%sjoin_token_ttl %r is not a duration above zero such as 30m or 1h "
                                             "(0 would make tokens that never expire)" % (p, ttl)))
    socket = str(values.get(p + "cri_socket") or "")
    if not socket.startswith("unix:///"):
        errors.append((p + "cri_socket", "%scri_socket %r is not a unix:/// socket URL" % (p, socket)))
    return errors


RULES = {"containerd": containerd, "kubernetes_node": kubernetes_node,
         "kubernetes_control_plane": kubernetes_control_plane}


def role_variable_errors(role, values):
    """[(variable, message)] of a role's rules; [] for a role without rules."""
    rules = RULES.get(role)
    return rules(values) if rules else []
