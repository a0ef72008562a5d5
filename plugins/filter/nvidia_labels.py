# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Kubernetes node labels for NVIDIA GPUs, named the way GPU Feature Discovery names them.

``gpu_labels(nvidia_facts, strategy, prefix, machine, on_mixed)`` turns
``ansible_facts['nvidia']`` (gpuforge.cluster.nvidia_gpu_facts) into the labels GPU Feature
Discovery (GFD, github.com/NVIDIA/k8s-device-plugin, internal/lm) puts on a node:
``nvidia.com/gpu.product``, ``gpu.count``, ``gpu.memory``, ``gpu.family``,
``gpu.compute.major/minor``, ``cuda.driver.*``, ``cuda.driver-version.*``,
``cuda.runtime.*``, ``cuda.runtime-version.*``, ``mig.capable``, ``mig.strategy`` and the
MIG labels of the ``single`` and ``mixed`` strategies. Every value is a valid label value.

``gpu_resources(nvidia_facts, strategy, prefix)`` gives the extended resources the NVIDIA
device plugin advertises for the same GPUs under a MIG strategy (``nvidia.com/gpu``,
``nvidia.com/mig-<profile>``), as a node's capacity: ``{name: count}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils.nvidia_catalog import (
    DNS_SUBDOMAIN_RE,
    CatalogError,
    find_profile,
    gpu_architecture,
    infer_mig_profile,
    is_label_key,
    is_label_value,
    label_value,
    mig_capable,
    mig_table,
    normalize_profile_name,
)

STRATEGIES = ("none", "single", "mixed")
ON_MIXED = ("error", "first")
NAME = "gpu_labels"
FACTS = "ansible_facts['nvidia']"
# MIG device counts (``attributes`` of a facts MIG device, nvidia-smi's
# <device_attributes><shared>) -> GFD MIG attribute label suffixes.
ENGINE_KEYS = (
    (("copy_engine_count",), "engines.copy"),
    (("decoder_count",), "engines.decoder"),
    (("encoder_count",), "engines.encoder"),
    (("jpg_count", "jpeg_count"), "engines.jpeg"),
    (("ofa_count",), "engines.ofa"),
)
NOT_REPORTED = ("", "n/a", "not found", "[n/a]")


def _warn(message):
    from ansible.utils.display import Display

    Display().warning(message)


def _error(message):
    raise AnsibleFilterError("%s: %s" % (NAME, message))


def gfd_family(major, minor):
    """GFD's getArchFamily (k8s-device-plugin internal/lm/resource.go) for a compute capability."""
    families = {1: "tesla", 2: "fermi", 3: "kepler", 5: "maxwell", 6: "pascal", 9: "hopper",
                10: "blackwell", 12: "blackwell", 13: "rubin"}
    if major == 7:
        return "volta" if minor < 5 else "turing"
    if major == 8:
        return "ampere" if minor < 9 else "ada-lovelace"
    return families.get(major, "undefined")


def _device_value(device, *keys):
    """A MIG device count from the facts: top-level key, then its ``attributes`` dict."""
    attributes = device.get("attributes")
    for key in keys:
        if device.get(key) is not None:
            return device[key]
        if isinstance(attributes, Mapping) and attributes.get(key) is not None:
            return attributes[key]
    return None


def gfd_part(text):
    """GFD's sanitise(): drop characters outside [A-Za-z0-9-_. ], join words with '-'."""
    return "-".join(re.sub(r"[^A-Za-z0-9\-_. ]", "", text).split())


def gfd_product(*parts):
    """GFD's product label: the sanitised parts joined with '-', made a valid label value."""
    return label_value("-".join(gfd_part(p) for p in parts if p))


def _int(value, where, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _error("%s must be an integer, got %r" % (where, value))
    if value < 0:
        _error("%s must not be negative, got %d" % (where, value))
    return int(value)


def _gpus(facts):
    if not isinstance(facts, Mapping):
        _error("the input must be %s (a dict), got %s" % (FACTS, type(facts).__name__))
    present = facts.get("present", True)
    if not isinstance(present, bool):
        _error("%s['present'] must be true or false, got %r" % (FACTS, present))
    gpus = facts.get("gpus")
    if gpus is None:
        gpus = []
    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Sequence):
        _error("%s['gpus'] must be a list, got %s" % (FACTS, type(gpus).__name__))
    count = _int(facts.get("gpu_count"), "%s['gpu_count']" % FACTS)
    if count is not None and count != len(gpus):
        _error("%s['gpu_count'] is %d but %s['gpus'] lists %d GPUs" % (FACTS, count, FACTS, len(gpus)))
    if not present:
        return []
    checked = []
    for position, gpu in enumerate(gpus):
        where = "%s['gpus'][%d]" % (FACTS, position)
        if not isinstance(gpu, Mapping):
            _error("%s must be a dict, got %s" % (where, type(gpu).__name__))
        name = gpu.get("name")
        if isinstance(name, bool) or not isinstance(name, str) or not name.strip():
            _error("%s['name'] must be the GPU product name, got %r" % (where, name))
        mig_enabled = gpu.get("mig_enabled") or False
        if not isinstance(mig_enabled, bool):
            _error("%s['mig_enabled'] must be true or false, got %r" % (where, mig_enabled))
        devices = gpu.get("mig_devices") or []
        if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
            _error("%s['mig_devices'] must be a list, got %s" % (where, type(devices).__name__))
        for number, device in enumerate(devices):
            if not isinstance(device, Mapping):
                _error("%s['mig_devices'][%d] must be a dict, got %s" % (where, number, type(device).__name__))
        capability = gpu.get("compute_capability")
        if capability is not None:
            match = re.match(r"^(\d+)\.(\d+)$", capability) if isinstance(capability, str) else None
            if not match:
                _error("%s['compute_capability'] must be like '8.0', got %r" % (where, capability))
            capability = (int(match.group(1)), int(match.group(2)))
        reported_mig = gpu.get("mig_capable")
        if reported_mig is not None and not isinstance(reported_mig, bool):
            _error("%s['mig_capable'] must be true or false, got %r" % (where, reported_mig))
        checked.append({
            "compute_capability": capability,
            "mig_capable": reported_mig,
            "where": where,
            "index": gpu.get("index", position),
            "name": str(name).strip(),
            "memory": _int(gpu.get("memory_total_mib"), "%s['memory_total_mib']" % where),
            "mig_enabled": mig_enabled,
            "mig_devices": list(devices),
        })
    return checked


def _version_labels(facts):
    labels = {}
    driver = facts.get("driver_version")
    if driver is not None:
        if not isinstance(driver, str) or not re.match(r"^\d+(\.\d+){1,2}$", driver.strip()):
            _error("%s['driver_version'] '%s' does not match the format X.Y[.Z]" % (FACTS, driver))
        parts = driver.strip().split(".")
        revision = parts[2] if len(parts) > 2 else ""
        labels.update({
            "cuda.driver.major": parts[0],
            "cuda.driver.minor": parts[1],
            "cuda.driver.rev": revision,
            "cuda.driver-version.major": parts[0],
            "cuda.driver-version.minor": parts[1],
            "cuda.driver-version.revision": revision,
            "cuda.driver-version.full": driver.strip(),
        })
    cuda = facts.get("cuda_version")
    if cuda is not None and not (isinstance(cuda, str) and cuda.strip().lower() in NOT_REPORTED):
        match = re.match(r"^(\d+)\.(\d+)$", str(cuda).strip()) if isinstance(cuda, str) else None
        if not match:
            _error("%s['cuda_version'] '%s' is not a CUDA version like 12.2" % (FACTS, cuda))
        major, minor = (str(int(x)) for x in match.groups())
        labels.update({
            "cuda.runtime.major": major,
            "cuda.runtime.minor": minor,
            "cuda.runtime-version.major": major,
            "cuda.runtime-version.minor": minor,
            "cuda.runtime-version.full": "%s.%s" % (major, minor),
        })
    return labels


def _resolve(gpu, device, number):
    """The catalogue profile of one MIG device of a GPU: its name in the facts, else inferred."""
    where = "%s['mig_devices'][%d]" % (gpu["where"], number)
    try:
        table = mig_table(gpu["name"])
    except CatalogError as exc:
        _error("GPU %s: %s" % (gpu["index"], exc))
    explicit = device.get("profile")
    if explicit is not None and explicit != "":
        try:
            name = normalize_profile_name(explicit)
        except CatalogError as exc:
            _error("%s['profile']: %s" % (where, exc))
        profile = find_profile(table, name)
        if profile is None:
            _error("%s['profile'] '%s' is not a MIG profile of %s" % (where, explicit, gpu["name"]))
        return profile
    memory = _int(device.get("memory_total_mib"), "%s['memory_total_mib']" % where, allow_none=False)
    sms = _int(_device_value(device, "sm_count", "multiprocessor_count"), "%s['sm_count']" % where)
    ofa = _int(_device_value(device, "ofa_count"), "%s['attributes']['ofa_count']" % where)
    profile, why = infer_mig_profile(table, memory, sms, ofa)
    if profile is None:
        _error("cannot tell the MIG profile of %s (GPU %s, %s, GPU instance %s): %s"
               % (where, gpu["index"], gpu["name"], device.get("gpu_instance_id"), why))
    return profile


def _mig_resource_labels(resource, model, profile, devices):
    """GFD NewMIGResourceLabeler: product, count, replicas, sharing and MIG attributes of one resource."""
    first = devices[0]
    labels = {
        resource + ".product": gfd_product(model, "MIG", profile["name"]),
        resource + ".count": str(len(devices)),
        resource + ".replicas": "1",
        resource + ".sharing-strategy": "none",
        resource + ".slices.gi": str(profile["compute_slices"]),
        resource + ".slices.ci": str(profile["compute_slices"]),
    }
    if first.get("memory_total_mib") is not None:
        labels[resource + ".memory"] = str(first["memory_total_mib"])
    sms = _device_value(first, "sm_count", "multiprocessor_count")
    if sms is not None:
        labels[resource + ".multiprocessors"] = str(sms)
    for keys, suffix in ENGINE_KEYS:
        value = _device_value(first, *keys)
        if value is not None:
            labels[resource + "." + suffix] = str(value)
    return labels


def _mig_labels(strategy, model, gpus):
    labels = {"mig.strategy": strategy}
    enabled = [g for g in gpus if g["mig_enabled"]]
    if strategy == "single":
        if not enabled:
            return labels
        reason = None
        if any(not g["mig_devices"] for g in enabled):
            reason = "at least one MIG device is enabled but empty"
        elif len(enabled) != len(gpus):
            reason = "devices with MIG enabled and disable detected"
        devices = {}
        if reason is None:
            for gpu in enabled:
                for number, device in enumerate(gpu["mig_devices"]):
                    profile = _resolve(gpu, device, number)
                    devices.setdefault(profile["name"], (profile, []))[1].append(device)
            if len(devices) != 1:
                reason = "more than one MIG device type present on node (%s)" % ", ".join(sorted(devices))
        if reason is not None:
            # GFD's newInvalidMigStrategyLabeler.
            _warn("%s: invalid configuration for mig-strategy=single: %s" % (NAME, reason))
            labels.update({
                "gpu.product": gfd_product(model, "MIG", "INVALID"),
                "gpu.count": "0",
                "gpu.replicas": "0",
                "gpu.memory": "0",
            })
            return labels
        profile, found = list(devices.values())[0]
        for key, value in _mig_resource_labels("gpu", model, profile, found).items():
            labels[key] = value
        return labels
    # mixed: one resource per profile; MIG-enabled GPUs without devices are ignored.
    groups = {}
    for gpu in enabled:
        for number, device in enumerate(gpu["mig_devices"]):
            profile = _resolve(gpu, device, number)
            groups.setdefault(profile["name"], (profile, []))[1].append(device)
    for name in sorted(groups):
        profile, found = groups[name]
        labels.update(_mig_resource_labels("mig-" + name.replace("+", "."), model, profile, found))
    return labels


def gpu_labels(nvidia_facts, strategy="none", prefix="nvidia.com", machine=None, on_mixed="error"):
    """Node labels for the GPUs in ``ansible_facts['nvidia']``; {} when the node has no GPU."""
    if strategy not in STRATEGIES:
        _error("strategy must be one of %s, got %r" % (", ".join(STRATEGIES), strategy))
    if on_mixed not in ON_MIXED:
        _error("on_mixed must be one of %s, got %r" % (", ".join(ON_MIXED), on_mixed))
    if not isinstance(prefix, str) or len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix):
        _error("prefix must be a DNS subdomain such as nvidia.com, got %r" % (prefix,))
    if machine is not None and (isinstance(machine, bool) or not isinstance(machine, str)):
        _error("machine must be a string (the machine type, e.g. /sys/class/dmi/id/product_name), got %r"
               % (machine,))
    gpus = _gpus(nvidia_facts)
    if not gpus:
        return {}
    models = []
    for gpu in gpus:
        if gpu["name"] not in models:
            models.append(gpu["name"])
    if len(models) > 1:
        message = "the node has different GPU models (%s); GFD labels one model per node" % ", ".join(models)
        if on_mixed == "error":
            _error(message + " (on_mixed=first labels the first one)")
        _warn("%s: %s; labelling %s" % (NAME, message, models[0]))
    model = models[0]
    selected = [g for g in gpus if g["name"] == model]

    labels = {"gpu.present": "true"}
    labels.update(_version_labels(nvidia_facts))
    labels["mig.capable"] = "true" if any(
        g["mig_capable"] or g["mig_enabled"] or mig_capable(g["name"]) for g in gpus) else "false"
    labels["mps.capable"] = "false"
    if machine is not None:
        labels["gpu.machine"] = label_value(machine) or "unknown"
    # Full-GPU labels (GFD NewGPUResourceLabeler). GPUs with MIG enabled are labelled
    # without sharing (replicas 0) unless a GPU of the model has MIG disabled.
    labels["gpu.product"] = gfd_product(model)
    labels["gpu.count"] = str(len(selected))
    labels["gpu.replicas"] = "1" if any(not g["mig_enabled"] for g in selected) else "0"
    labels["gpu.sharing-strategy"] = "none"
    if selected[0]["memory"]:
        labels["gpu.memory"] = str(selected[0]["memory"])
    # Compute capability: what nvidia-smi reported (facts), else the catalogue's.
    capability = selected[0]["compute_capability"]
    if capability is None:
        arch = gpu_architecture(model)
        if arch is not None:
            capability = tuple(int(x) for x in arch["compute_capability"].split("."))
    if capability is not None:
        labels["gpu.family"] = gfd_family(*capability)
        labels["gpu.compute.major"] = str(capability[0])
        labels["gpu.compute.minor"] = str(capability[1])
    if strategy != "none":
        labels.update(_mig_labels(strategy, model, selected))

    result = {}
    for suffix, value in labels.items():
        key = "%s/%s" % (prefix, suffix)
        if not is_label_key(key):
            _error("'%s' is not a valid label key" % key)
        text = label_value(value) if value != "" else ""
        if not is_label_value(text):
            _error("label %s: '%s' cannot be made a valid label value" % (key, value))
        result[key] = text
    return dict(sorted(result.items()))


def gpu_resources(nvidia_facts, strategy="none", prefix="nvidia.com"):
    """Extended resources of the node's GPUs under a device-plugin MIG strategy: {name: count}.

    none: every GPU is one ``<prefix>/gpu`` (MIG mode ignored). single: a node whose GPUs all
    have MIG enabled with one profile exposes each MIG device as ``<prefix>/gpu``; no GPU with
    MIG enabled exposes whole GPUs; any other mix exposes nothing (the plugin refuses it, GFD
    labels it MIG-INVALID). mixed: GPUs without MIG are ``<prefix>/gpu``, MIG devices
    ``<prefix>/mig-<profile>`` (``+`` in a profile name becomes ``.``, as the plugin does).
    """
    if strategy not in STRATEGIES:
        raise AnsibleFilterError("gpu_resources: strategy must be one of %s, got %r" % (", ".join(STRATEGIES), strategy))
    if not isinstance(prefix, str) or len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix):
        raise AnsibleFilterError("gpu_resources: prefix must be a DNS subdomain such as nvidia.com, got %r" % (prefix,))
    try:
        return _gpu_resources(nvidia_facts, strategy, prefix)
    except AnsibleFilterError as exc:
        # the shared checks name gpu_labels; say which filter the caller used
        raise AnsibleFilterError("gpu_resources: " + str(exc.message).split(": ", 1)[-1]) from None


def _gpu_resources(nvidia_facts, strategy, prefix):
    gpus = _gpus(nvidia_facts)
    if not gpus:
        return {}
    gpu = prefix + "/gpu"
    if strategy == "none":
        return {gpu: len(gpus)}
    enabled = [g for g in gpus if g["mig_enabled"]]
    if strategy == "single":
        if not enabled:
            return {gpu: len(gpus)}
        if len(enabled) != len(gpus) or any(not g["mig_devices"] for g in enabled):
            return {gpu: 0}
        names = {_resolve(g, d, n)["name"] for g in enabled for n, d in enumerate(g["mig_devices"])}
        return {gpu: sum(len(g["mig_devices"]) for g in enabled) if len(names) == 1 else 0}
    resources = {}
    whole = len(gpus) - len(enabled)
    if whole:
        resources[gpu] = whole
    for g in enabled:
        for number, device in enumerate(g["mig_devices"]):
            name = "%s/mig-%s" % (prefix, _resolve(g, device, number)["name"].replace("+", "."))
            resources[name] = resources.get(name, 0) + 1
    return dict(sorted(resources.items()))


class FilterModule(object):
    """gpuforge.cluster GPU node label filters."""

    def filters(self):
        return {"gpu_labels": gpu_labels, "gpu_resources": gpu_resources}
