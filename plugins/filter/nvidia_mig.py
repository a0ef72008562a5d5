# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""MIG (Multi-Instance GPU) filters of gpuforge.cluster.

* ``mig_layout_validate(layout, gpu_name)``: check a MIG layout against NVIDIA's profile
  table of the GPU and place it (published placements, backtracking search).
* ``mig_resources(layout, gpu_name, strategy, gpus)``: the extended resources the NVIDIA
  device plugin advertises for that layout.
* ``mig_profiles(gpu_name)``: the profile table of a GPU.
* ``mig_capable(gpu_name)``: whether the GPU supports MIG.

The tables live in ``plugins/module_utils/nvidia_catalog.py`` with their sources.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils.nvidia_catalog import (
    CatalogError,
    find_profile,
    mig_capable as _mig_capable,
    mig_fit,
    mig_table,
    normalize_profile_name,
)

STRATEGIES = ("none", "single", "mixed")


def _fail(name, exc):
    raise AnsibleFilterError("%s: %s" % (name, exc)) from exc


def _gpu_name(value, filter_name):
    if isinstance(value, bool) or not isinstance(value, str) or not value.strip():
        raise AnsibleFilterError("%s: gpu_name must be the nvidia-smi product name (a non-empty string, "
                                 "e.g. 'NVIDIA A100-SXM4-80GB'), got %r" % (filter_name, value))
    return str(value)


def _table(gpu_name, filter_name):
    try:
        return mig_table(gpu_name)
    except CatalogError as exc:
        _fail(filter_name, exc)


def _count(value, profile, filter_name):
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnsibleFilterError("%s: the count of MIG profile '%s' must be an integer, got %r"
                                 % (filter_name, profile, value))
    if value < 0:
        raise AnsibleFilterError("%s: the count of MIG profile '%s' must not be negative, got %d"
                                 % (filter_name, profile, value))
    return int(value)


def _counts(layout, filter_name):
    """A layout (list of profile names or {profile: count}) as an ordered {profile: count}."""
    counts = {}
    if isinstance(layout, Mapping):
        items = [(key, _count(value, key, filter_name)) for key, value in layout.items()]
    elif isinstance(layout, Sequence) and not isinstance(layout, (str, bytes)):
        items = [(name, 1) for name in layout]
    else:
        raise AnsibleFilterError("%s: the layout must be a list of MIG profile names or a dict "
                                 "{profile: count}, got %s %r" % (filter_name, type(layout).__name__, layout))
    for name, count in items:
        try:
            profile = normalize_profile_name(name)
        except CatalogError as exc:
            _fail(filter_name, exc)
        if count:
            counts[profile] = counts.get(profile, 0) + count
    return counts


def _validate(layout, gpu_name, filter_name):
    gpu_name = _gpu_name(gpu_name, filter_name)
    table = _table(gpu_name, filter_name)
    counts = _counts(layout, filter_name)
    for name, count in counts.items():
        profile = find_profile(table, name)
        if profile is None:
            raise AnsibleFilterError(
                "%s: MIG profile '%s' does not exist on %s (%s); its profiles are: %s"
                % (filter_name, name, gpu_name, table["product"], ", ".join(p["name"] for p in table["profiles"])))
        if count > profile["max_instances"]:
            raise AnsibleFilterError(
                "%s: %d instances of MIG profile '%s' requested on %s, at most %d fit"
                % (filter_name, count, name, gpu_name, profile["max_instances"]))
    media = [name for name in counts if find_profile(table, name)["media_extensions"]]
    if sum(counts[name] for name in media) > 1:
        raise AnsibleFilterError(
            "%s: %s: only one MIG instance per GPU can have media extensions (+me), the layout asks for %s"
            % (filter_name, gpu_name, " + ".join("%d x %s" % (counts[n], n) for n in media)))
    compute = sum(find_profile(table, name)["compute_slices"] * count for name, count in counts.items())
    memory = sum(find_profile(table, name)["memory_slices"] * count for name, count in counts.items())
    shown = " + ".join("%d x %s" % (count, name) for name, count in counts.items())
    if compute > table["compute_slices"] or memory > table["memory_slices"]:
        raise AnsibleFilterError(
            "%s: MIG layout %s does not fit %s: it needs %d of %d compute slices and %d of %d memory slices"
            % (filter_name, shown, gpu_name, compute, table["compute_slices"], memory, table["memory_slices"]))
    placed = mig_fit(table, counts)
    if placed is None:
        raise AnsibleFilterError(
            "%s: MIG layout %s does not fit %s: no combination of NVIDIA's published placements "
            "(nvidia-smi mig -lgipp) holds these instances without overlapping memory slices"
            % (filter_name, shown, gpu_name))
    return table, counts, placed


def mig_layout_validate(layout, gpu_name):
    """Validate and place a MIG layout; returns the instances with their placements."""
    table, _counts_, placed = _validate(layout, gpu_name, "mig_layout_validate")
    result = []
    for item in placed:
        profile = item["profile"]
        result.append({
            "profile": profile["name"],
            "profile_id": profile["profile_id"],
            "compute_slices": profile["compute_slices"],
            "memory_slices": profile["memory_slices"],
            "memory_gib": profile["memory_gib"],
            "placement": {"start": item["placement"]["start"], "size": item["placement"]["size"]},
        })
    return result


def mig_resources(layout, gpu_name, strategy="mixed", gpus=1):
    """Extended resources the NVIDIA device plugin advertises for ``gpus`` GPUs with this layout."""
    name = "mig_resources"
    if strategy not in STRATEGIES:
        raise AnsibleFilterError("%s: strategy must be one of %s, got %r" % (name, ", ".join(STRATEGIES), strategy))
    if isinstance(gpus, bool) or not isinstance(gpus, int):
        raise AnsibleFilterError("%s: gpus must be an integer (GPUs with this layout on the node), got %r" % (name, gpus))
    if gpus < 1:
        raise AnsibleFilterError("%s: gpus must be at least 1, got %d" % (name, gpus))
    if strategy == "none":
        # The 'none' strategy advertises whole GPUs whatever their MIG mode.
        if layout:
            _validate(layout, gpu_name, name)
        else:
            _gpu_name(gpu_name, name)
        return {"nvidia.com/gpu": gpus}
    if layout is None:
        raise AnsibleFilterError("%s: strategy '%s' needs a MIG layout, got none" % (name, strategy))
    _table_, counts, _placed = _validate(layout, gpu_name, name)
    if strategy == "single":
        if len(counts) != 1:
            raise AnsibleFilterError(
                "%s: strategy 'single' needs every MIG instance on %s to use the same profile, the layout has %s"
                % (name, gpu_name, ", ".join(sorted(counts)) or "no instances"))
        return {"nvidia.com/gpu": list(counts.values())[0] * gpus}
    # mixed: one resource per profile; the device plugin turns '+' into '.' (mig-1g.10gb.me).
    return {"nvidia.com/mig-%s" % profile.replace("+", "."): count * gpus for profile, count in counts.items()}


def mig_profiles(gpu_name):
    """NVIDIA's MIG profile table for a GPU (a copy, with the sources)."""
    name = _gpu_name(gpu_name, "mig_profiles")
    table = copy.deepcopy(_table(name, "mig_profiles"))
    for profile in table["profiles"]:
        profile["multiprocessors"] = list(profile["multiprocessors"])
    return table


def mig_capable(gpu_name):
    """True for GPUs on NVIDIA's list of MIG-capable products."""
    name = _gpu_name(gpu_name, "mig_capable")
    try:
        return _mig_capable(name)
    except CatalogError as exc:
        _fail("mig_capable", exc)


class FilterModule(object):
    """gpuforge.cluster MIG filters."""

    def filters(self):
        return {
            "mig_layout_validate": mig_layout_validate,
            "mig_resources": mig_resources,
            "mig_profiles": mig_profiles,
            "mig_capable": mig_capable,
        }
