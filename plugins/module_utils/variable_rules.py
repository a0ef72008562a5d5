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


RULES = {"containerd": containerd, "kubernetes_node": kubernetes_node}


def role_variable_errors(role, values):
    """[(variable, message)] of a role's rules; [] for a role without rules."""
    rules = RULES.get(role)
    return rules(values) if rules else []
