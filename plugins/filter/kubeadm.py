# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""kubeadm's inputs and outputs, for the control-plane, worker and upgrade tasks.

``kubeadm_endpoint(value, default_port)``: ``{host, port, address}`` of ``host``, ``host:port``,
``[v6]:port`` (``address`` is what kubeadm's controlPlaneEndpoint and apiServerEndpoint take).

``kubeadm_join_command(stdout)``: ``{endpoint, token, ca_cert_hashes}`` parsed from
``kubeadm token create --print-join-command``.

``kubeadm_certificate_key(stdout)``: the key ``kubeadm init phase upload-certs --upload-certs`` prints.

``kubeadm_redact(text)``: the text with bootstrap tokens, certificate keys and CA hashes replaced,
so that kubeadm's errors can be shown although its output is secret.

``kubeadm_extra_args(mapping)``: kubeadm.k8s.io/v1beta4 ``extraArgs`` (a list of name/value) from a dict;
``kubeadm_feature_gates(mapping)``: the value of a ``--feature-gates`` flag.

``kubernetes_upgrade_plan(current, target)``: ``{current, target, minors, ok, reason}`` for an upgrade
from the running version to the target: refused for a downgrade or a skipped minor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils.names import split_endpoint

TOKEN_RE = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
HASH_RE = re.compile(r"\bsha256:[a-f0-9]{64}\b")
KEY_RE = re.compile(r"\b[a-f0-9]{64}\b")
VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def kubeadm_endpoint(value, default_port=6443):
    try:
        host, port = split_endpoint(value, default_port)
    except ValueError as exc:
        raise AnsibleFilterError("kubeadm_endpoint: %r is not host or host:port (%s)" % (value, exc))
    shown = "[%s]" % host if ":" in host else host
    return {"host": host, "port": port, "address": "%s:%d" % (shown, port)}


def kubeadm_join_command(stdout):
    text = str(stdout or "")
    match = re.search(r"kubeadm join (\S+) --token (\S+)((?: --discovery-token-ca-cert-hash \S+)+)", text)
    if not match:
        raise AnsibleFilterError("kubeadm_join_command: no 'kubeadm join <endpoint> --token ... "
                                 "--discovery-token-ca-cert-hash ...' line in the output of kubeadm token create")
    if not TOKEN_RE.fullmatch(match.group(2)):
        raise AnsibleFilterError("kubeadm_join_command: the token is not a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})")
    hashes = re.findall(r"--discovery-token-ca-cert-hash (\S+)", match.group(3))
    if not all(HASH_RE.fullmatch(h) for h in hashes):
        raise AnsibleFilterError("kubeadm_join_command: a CA certificate hash is not sha256:<64 hex digits>")
    return {"endpoint": match.group(1), "token": match.group(2), "ca_cert_hashes": hashes}


def kubeadm_certificate_key(stdout):
    keys = [line.strip() for line in str(stdout or "").splitlines() if KEY_RE.fullmatch(line.strip())]
    if len(keys) != 1:
        raise AnsibleFilterError("kubeadm_certificate_key: expected one certificate key (64 hex digits on a line of "
                                 "its own) in the output of kubeadm init phase upload-certs, found %d" % len(keys))
    return keys[0]


def kubeadm_redact(text):
    text = HASH_RE.sub("sha256:<redacted>", str(text or ""))
    text = TOKEN_RE.sub("<token>", text)
    return KEY_RE.sub("<key>", text)


def kubeadm_extra_args(mapping):
    if not isinstance(mapping, Mapping):
        raise AnsibleFilterError("kubeadm_extra_args: expected a dict of flag names to values, got %s"
                                 % type(mapping).__name__)
    out = []
    for name, value in sorted(mapping.items()):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append({"name": str(name).lstrip("-"), "value": text})
    return out


def kubeadm_feature_gates(mapping):
    """``Name=true,Other=false`` (sorted) for the components' --feature-gates flag."""
    if not isinstance(mapping, Mapping):
        raise AnsibleFilterError("kubeadm_feature_gates: expected a dict of gate names to true/false, got %s"
                                 % type(mapping).__name__)
    bad = sorted(str(k) for k, v in mapping.items() if not isinstance(v, bool))
    if bad:
        raise AnsibleFilterError("kubeadm_feature_gates: %s must be true or false" % ", ".join(bad))
    return ",".join("%s=%s" % (k, str(v).lower()) for k, v in sorted(mapping.items()))


def _version(value, what):
    match = VERSION_RE.match(str(value or "").strip())
    if not match:
        raise AnsibleFilterError("kubernetes_upgrade_plan: %s %r is not a Kubernetes version (X.Y.Z)" % (what, value))
    return tuple(int(x) for x in match.groups())


def kubernetes_upgrade_plan(current, target):
    now, want = _version(current, "current"), _version(target, "target")
    plan = {"current": "%d.%d.%d" % now, "target": "%d.%d.%d" % want, "minors": want[1] - now[1], "ok": True,
            "reason": "", "change": want != now}
    if want[0] != now[0]:
        plan.update(ok=False, reason="the major version changes (%d to %d)" % (now[0], want[0]))
    elif want < now:
        plan.update(ok=False, reason="%s is older than the running %s: kubeadm does not downgrade"
                    % (plan["target"], plan["current"]))
    elif want[1] - now[1] > 1:
        plan.update(ok=False, reason="%s to %s skips %s: upgrade one minor at a time (%s)" % (
            plan["current"], plan["target"],
            ", ".join("1.%d" % m for m in range(now[1] + 1, want[1])),
            " then ".join("1.%d.x" % m for m in range(now[1] + 1, want[1] + 1))))
    return plan


class FilterModule(object):
    """gpuforge.cluster kubeadm filters."""

    def filters(self):
        return {
            "kubeadm_endpoint": kubeadm_endpoint,
            "kubeadm_join_command": kubeadm_join_command,
            "kubeadm_certificate_key": kubeadm_certificate_key,
            "kubeadm_redact": kubeadm_redact,
            "kubeadm_extra_args": kubeadm_extra_args,
            "kubeadm_feature_gates": kubeadm_feature_gates,
            "kubernetes_upgrade_plan": kubernetes_upgrade_plan,
        }
