# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Node labels and taints gpuforge manages, next to those others set; the pods a drain must move.

``k8s_node_patch(node, labels, taints)`` compares a Node object (as the API returns it,
kubernetes.core.k8s_info) with the labels and taints gpuforge wants on it and returns
``{"in_sync": bool, "patch": {...}}``: a strategic-merge patch that sets the wanted labels,
removes the labels and taints gpuforge set earlier and no longer wants (their keys are kept in
the annotations ``gpuforge.io/managed-labels`` and ``gpuforge.io/managed-taints``), and
leaves every label and taint set by others (kubeadm, the node lifecycle controller, users).

``k8s_drain_blockers(pods)`` lists the pods of a node that a drain must see leave (gpuforge.cluster.kubernetes_drain
waits until none is left): every pod but DaemonSet, mirror and finished ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils import names

LABELS_ANNOTATION = "gpuforge.io/managed-labels"
TAINTS_ANNOTATION = "gpuforge.io/managed-taints"
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _error(message):
    raise AnsibleFilterError("k8s_node_patch: " + message)


def _key_ok(key):
    return names.is_label_key(key)


def _labels(labels):
    if not isinstance(labels, Mapping):
        _error("labels must be a dict, got %s" % type(labels).__name__)
    out = {}
    for key, value in labels.items():
        text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        if not _key_ok(key):
            _error("label key %r is not a valid Kubernetes label key" % (key,))
        if not names.is_label_value(text):
            _error("label %s: value %r is not a valid label value (63 characters of [A-Za-z0-9._-], "
                   "alphanumeric at both ends)" % (key, text))
        out[key] = text
    return out


def _taints(taints):
    if isinstance(taints, (str, bytes)) or not isinstance(taints, Sequence):
        _error("taints must be a list, got %s" % type(taints).__name__)
    out = []
    for number, taint in enumerate(taints):
        if not isinstance(taint, Mapping) or not taint.get("key") or not taint.get("effect"):
            _error("taints[%d] needs a key and an effect, got %r" % (number, taint))
        value = "" if taint.get("value") is None else str(taint["value"])
        if not _key_ok(taint["key"]) or not names.is_label_value(value):
            _error("taints[%d]: %r=%r is not a valid taint key and value" % (number, taint["key"], value))
        if taint["effect"] not in EFFECTS:
            _error("taints[%d]: effect %r is not one of %s" % (number, taint["effect"], ", ".join(EFFECTS)))
        out.append({"key": taint["key"], "value": value, "effect": taint["effect"]})
    ids = ["%s:%s" % (t["key"], t["effect"]) for t in out]
    if len(ids) != len(set(ids)):
        _error("taints lists a key and effect twice: %s" % ", ".join(sorted(i for i in set(ids) if ids.count(i) > 1)))
    return out


def _normal_taint(taint):
    return {"key": taint.get("key"), "value": taint.get("value") or "", "effect": taint.get("effect")}


def k8s_node_patch(node, labels=None, taints=None):
    """{in_sync, patch, removed_labels, removed_taints} for a Node and the labels/taints wanted on it."""
    if not isinstance(node, Mapping) or not isinstance(node.get("metadata"), Mapping):
        _error("node must be a Node object as the API returns it (with metadata), got %r" % (type(node).__name__,))
    wanted_labels = _labels(labels or {})
    wanted_taints = _taints(taints or [])
    metadata = node["metadata"]
    current_labels = dict(metadata.get("labels") or {})
    annotations = dict(metadata.get("annotations") or {})
    current_taints = [_normal_taint(t) for t in (node.get("spec") or {}).get("taints") or []]

    previous_labels = [k for k in (annotations.get(LABELS_ANNOTATION) or "").split(",") if k]
    previous_taints = [k for k in (annotations.get(TAINTS_ANNOTATION) or "").split(",") if k]
    removed_labels = sorted(k for k in previous_labels if k not in wanted_labels and k in current_labels)
    wanted_ids = ["%s:%s" % (t["key"], t["effect"]) for t in wanted_taints]
    kept = [t for t in current_taints
            if "%s:%s" % (t["key"], t["effect"]) not in previous_taints + wanted_ids]
    removed_taints = sorted("%s:%s" % (t["key"], t["effect"]) for t in current_taints
                            if "%s:%s" % (t["key"], t["effect"]) in previous_taints
                            and "%s:%s" % (t["key"], t["effect"]) not in wanted_ids)
    new_taints = kept + wanted_taints
    new_annotations = {LABELS_ANNOTATION: ",".join(sorted(wanted_labels)), TAINTS_ANNOTATION: ",".join(sorted(wanted_ids))}

    in_sync = (all(current_labels.get(k) == v for k, v in wanted_labels.items())
               and not removed_labels
               and all(annotations.get(k) == v for k, v in new_annotations.items())
               and current_taints == new_taints)
    label_patch = dict(wanted_labels)
    label_patch.update({k: None for k in removed_labels})
    patch = {"metadata": {"labels": label_patch, "annotations": new_annotations}}
    if current_taints != new_taints:
        patch["spec"] = {"taints": new_taints}
    return {"in_sync": in_sync, "patch": patch, "removed_labels": removed_labels, "removed_taints": removed_taints}


MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def k8s_drain_blockers(pods):
    """The pods (``namespace/name``) a drain of their node must see leave: not DaemonSet pods, not mirror (static)
    pods, not finished ones; ``pods`` as kubernetes.core.k8s_info returns them (its ``resources``)."""
    if isinstance(pods, Mapping) and "resources" in pods:
        pods = pods["resources"]
    if isinstance(pods, (str, bytes)) or not isinstance(pods, Sequence):
        _error_named("k8s_drain_blockers", "pods must be a list of Pod objects, got %s" % type(pods).__name__)
    out = []
    for pod in pods:
        if not isinstance(pod, Mapping) or not isinstance(pod.get("metadata"), Mapping):
            _error_named("k8s_drain_blockers", "%r is not a Pod object" % (pod,))
        metadata = pod["metadata"]
        if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
            continue
        if ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
            continue
        if any((o or {}).get("kind") == "DaemonSet" for o in metadata.get("ownerReferences") or []):
            continue
        out.append("%s/%s" % (metadata.get("namespace"), metadata.get("name")))
    return sorted(out)


def _error_named(name, message):
    raise AnsibleFilterError("%s: %s" % (name, message))


class FilterModule(object):
    """gpuforge.cluster Kubernetes node filters."""

    def filters(self):
        return {"k8s_node_patch": k8s_node_patch, "k8s_drain_blockers": k8s_drain_blockers}
