# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""NVIDIA data shared by the gpuforge.cluster GPU filters, and pure functions over it.

Nothing here touches a host. Every table names the public NVIDIA page it was copied
from (see also docs/gpu-filters.md). Functions raise ``CatalogError`` (a ``ValueError``)
with a message naming the value at fault; the filter plugins turn it into
``AnsibleFilterError``.

Contents:

* MIG profile tables (profiles, slices, memory, max instances, placements) and a
  placement search (``mig_fit``).
* GPU model -> architecture / compute capability, and architecture -> driver and
  CUDA toolkit support.
* CUDA toolkit -> minimum Linux driver (toolkit-bundled and minor-version compatibility).
* Version parsing helpers for driver and CUDA versions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ansible_collections.gpuforge.cluster.plugins.module_utils import names

INF = float("inf")


class CatalogError(ValueError):
    """Bad input or a question the catalogue cannot answer; the message names the value."""


# ---------------------------------------------------------------------------
# GPU names


def normalize_gpu_name(name):
    """Lower case, without the "NVIDIA " brand prefix, separators collapsed to one space.

    "NVIDIA A100-SXM4-80GB" -> "a100 sxm4 80gb"; "Tesla T4" -> "tesla t4".
    """
    if isinstance(name, bool) or not isinstance(name, str):
        raise CatalogError("GPU name must be a string (nvidia-smi product name), got %s" % type(name).__name__)
    text = name.strip().lower()
    if not text:
        raise CatalogError("GPU name is empty")
    text = re.sub(r"[\s_\-/]+", " ", text)
    text = re.sub(r"^nvidia\s+", "", text)
    return text.strip()


# ---------------------------------------------------------------------------
# MIG profile tables
#
# Profile names, memory/SM fractions and instance counts:
#   NVIDIA Multi-Instance GPU User Guide, "Supported MIG Profiles"
#   https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html
# Placements (start:size in memory slices, as `nvidia-smi mig -lgipp` prints them):
#   A100 and H100 NVL lgipp output in the same guide ("Getting Started with MIG",
#   https://docs.nvidia.com/datacenter/tesla/mig-user-guide/getting-started-with-mig.html):
#     GPU  0 Profile ID 19 Placements: {0,1,2,3,4,5,6}:1
#     GPU  0 Profile ID 20 Placements: {0,1,2,3,4,5,6}:1
#     GPU  0 Profile ID 15 Placements: {0,2,4,6}:2
#     GPU  0 Profile ID 14 Placements: {0,2,4}:2
#     GPU  0 Profile ID  9 Placements: {0,4}:4
#     GPU  0 Profile ID  5 Placement : {0}:4
#     GPU  0 Profile ID  0 Placement : {0}:8
#   H200, B200 and GH200 publish the same profile IDs, memory fractions (1/8, 2/8, 4/8,
#   full) and instance counts, so they use the same 8-slice geometry.
#   A30 (4 memory slices): NVIDIA's NVML mock of the A30
#   (github.com/NVIDIA/go-nvml pkg/nvml/mock/shared/gpus/a30.go): 1g {0,1,2,3}:1,
#   2g {0,2}:2, 4g {0}:4.
# memory_gib: the "Memory GiB" column of a real `nvidia-smi mig -lgip` (it moves by a few
#   hundred MiB between driver branches; see each table's comment for the capture).
# multiprocessors: SM counts seen in real `nvidia-smi mig -lgip` captures (SXM and PCIe
#   boards differ); used only to tell apart profiles with equal memory (1g.20gb/2g.20gb).
# media_extensions: "+me" profiles carry the GPU's only OFA/JPEG set; the guide allows
#   "a single 1g profile" with media extensions, so at most one "+me" instance per GPU.

_GEOMETRY_8 = {
    19: [(s, 1) for s in range(7)],
    20: [(s, 1) for s in range(7)],
    15: [(0, 2), (2, 2), (4, 2), (6, 2)],
    14: [(0, 2), (2, 2), (4, 2)],
    9: [(0, 4), (4, 4)],
    5: [(0, 4)],
    0: [(0, 8)],
}


def _table(key, product, names, memory_gib, multiprocessors, sources, notes=()):
    """An 8-memory-slice / 7-compute-slice MIG table (A100, H100, H200, B200, GH200).

    ``names`` lists the profile names for IDs 19, 20, 15, 14, 9, 5, 0.
    """
    ids = (19, 20, 15, 14, 9, 5, 0)
    compute = (1, 1, 1, 2, 3, 4, 7)
    memory = (1, 1, 2, 2, 4, 4, 8)
    maximum = (7, 1, 4, 3, 2, 1, 1)
    profiles = []
    for i, pid in enumerate(ids):
        profiles.append({
            "name": names[i],
            "profile_id": pid,
            "compute_slices": compute[i],
            "memory_slices": memory[i],
            "memory_gib": memory_gib[i] if memory_gib else None,
            "max_instances": maximum[i],
            "media_extensions": pid == 20,
            "multiprocessors": tuple(multiprocessors[i]) if multiprocessors else (),
            "placements": [{"start": s, "size": z} for s, z in _GEOMETRY_8[pid]],
        })
    return {
        "key": key,
        "product": product,
        "compute_slices": 7,
        "memory_slices": 8,
        "profiles": profiles,
        "sources": list(sources),
        "notes": list(notes),
    }


MIG_USER_GUIDE = "https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html"
MIG_GETTING_STARTED = "https://docs.nvidia.com/datacenter/tesla/mig-user-guide/getting-started-with-mig.html"

MIG_TABLES = {
    # memory_gib: `nvidia-smi mig -lgip` on A100-SXM4-40GB (1g.5gb 4.75, 2g.10gb 9.75,
    # 3g.20gb 19.62, 4g.20gb 19.62, 7g.40gb 39.50). 1g.10gb uses the same two memory
    # slices as 2g.10gb. The user guide lists 1g.10gb as "1/8" memory, but it is the
    # two-slice profile (ID 15, placements {0,2,4,6}:2) and needs R525 or newer.
    "A100_40GB": _table(
        "A100_40GB", "A100 40GB (A100-SXM4-40GB, A100-PCIE-40GB)",
        ("1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
        (4.75, 4.75, 9.75, 9.75, 19.62, 19.62, 39.50),
        ((14,), (14,), (14,), (28,), (42,), (56,), (98,)),
        (MIG_USER_GUIDE, MIG_GETTING_STARTED),
        ("1g.5gb+me needs R470 or newer; 1g.10gb needs R525 or newer.",
         "Before R510 a 4g and a 3g instance could not be combined.")),
    # memory_gib: `nvidia-smi mig -lgip` on A100-SXM4-80GB (1g.10gb 9.50 ... 7g.80gb 79.00);
    # the telegraf a100-sxm4-v12.xml capture (driver 535.54.03) shows four 1g.20gb
    # devices of 19968 MiB (19.50 GiB) and 14 SMs each.
    "A100_80GB": _table(
        "A100_80GB", "A100 80GB (A100-SXM4-80GB, A100 80GB PCIe)",
        ("1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
        (9.50, 9.50, 19.50, 19.50, 39.25, 39.25, 79.00),
        ((14,), (14,), (14,), (28,), (42,), (56,), (98,)),
        (MIG_USER_GUIDE, MIG_GETTING_STARTED)),
    # memory_gib: `nvidia-smi mig -lgip` on H100 80GB HBM3 (SXM5); the nvidia_gpu_exporter
    # H100 MIG capture (driver 590.48.01) shows 3g.40gb 40448 MiB / 60 SM, 2g.20gb
    # 20096 MiB / 32 SM and 1g.10gb 9984 MiB / 16 SM. H100 PCIe prints 14/14/14/30/46/62/114 SMs.
    "H100_80GB": _table(
        "H100_80GB", "H100 80GB (H100 80GB HBM3 / SXM5, H100 PCIe)",
        ("1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
        (9.75, 9.75, 19.62, 19.62, 39.50, 39.50, 79.25),
        ((16, 14), (16, 14), (26, 14), (32, 30), (60, 46), (64, 62), (132, 114)),
        (MIG_USER_GUIDE, MIG_GETTING_STARTED)),
    # memory_gib: `nvidia-smi mig -lgip` on H100 NVL (github.com/NVIDIA/gpu-operator PR #900).
    "H100_94GB": _table(
        "H100_94GB", "H100 94GB (H100 NVL, H100 SXM5 94GB)",
        ("1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"),
        (10.75, 10.75, 21.62, 21.62, 46.38, 46.38, 93.12),
        ((16,), (16,), (26,), (32,), (60,), (64,), (132,)),
        (MIG_USER_GUIDE, "https://github.com/NVIDIA/gpu-operator/pull/900")),
    # The guide's "H100 96GB product (H100 on GH200)" table; no lgip capture was found,
    # so memory in GiB is not listed.
    "H100_96GB": _table(
        "H100_96GB", "H100 96GB (H100 on GH200)",
        ("1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.48gb", "4g.48gb", "7g.96gb"),
        None, None, (MIG_USER_GUIDE,)),
    # memory_gib: `nvidia-smi mig -lgip` on H200 (github.com/NVIDIA/mig-parted issue #120).
    "H200_141GB": _table(
        "H200_141GB", "H200 141GB (H200 SXM5, H200 NVL)",
        ("1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
        (16.00, 16.00, 32.25, 32.25, 69.50, 69.50, 139.75),
        ((16,), (16,), (26,), (32,), (60,), (64,), (132,)),
        (MIG_USER_GUIDE, "https://github.com/NVIDIA/mig-parted/issues/120")),
    # NVIDIA publishes one B200 table, for the "B200 180 GB product".
    # memory_gib: `nvidia-smi mig -lgip` on B200 (github.com/NVIDIA/mig-parted PR #187,
    # 1g.23gb 20.50 and 1g.45gb/2g.45gb 44.25; R570 GA printed 22.00 for 1g.23gb, PR #166),
    # 3g/4g.90gb 89.00 and 7g.180gb 178.50 from a B200 lgip listing in a public repository.
    "B200_180GB": _table(
        "B200_180GB", "B200 180GB",
        ("1g.23gb", "1g.23gb+me", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"),
        (20.50, 20.50, 44.25, 44.25, 89.00, 89.00, 178.50),
        ((18,), (18,), (30,), (36,), (70,), (72,), (148,)),
        (MIG_USER_GUIDE, "https://github.com/NVIDIA/mig-parted/pull/166",
         "https://github.com/NVIDIA/mig-parted/pull/187"),
        ("MIG on B200 needs R570 (>= 570.133.20); 4g.90gb was added to mig-parted later (PR #187).",)),
}

# A30 24GB: 4 memory slices, 4 compute slices. memory_gib/IDs: `nvidia-smi mig -lgip`
# on A30 (1g.6gb ID 14 5.81, 1g.6gb+me ID 21, 2g.12gb ID 5 11.69, 2g.12gb+me ID 6, 4g.24gb ID 0 23.44).
MIG_TABLES["A30_24GB"] = {
    "key": "A30_24GB",
    "product": "A30 24GB",
    "compute_slices": 4,
    "memory_slices": 4,
    "profiles": [
        {"name": "1g.6gb", "profile_id": 14, "compute_slices": 1, "memory_slices": 1, "memory_gib": 5.81,
         "max_instances": 4, "media_extensions": False, "multiprocessors": (14,),
         "placements": [{"start": s, "size": 1} for s in range(4)]},
        {"name": "1g.6gb+me", "profile_id": 21, "compute_slices": 1, "memory_slices": 1, "memory_gib": 5.81,
         "max_instances": 1, "media_extensions": True, "multiprocessors": (14,),
         "placements": [{"start": s, "size": 1} for s in range(4)]},
        {"name": "2g.12gb", "profile_id": 5, "compute_slices": 2, "memory_slices": 2, "memory_gib": 11.69,
         "max_instances": 2, "media_extensions": False, "multiprocessors": (28,),
         "placements": [{"start": 0, "size": 2}, {"start": 2, "size": 2}]},
        {"name": "2g.12gb+me", "profile_id": 6, "compute_slices": 2, "memory_slices": 2, "memory_gib": 11.69,
         "max_instances": 1, "media_extensions": True, "multiprocessors": (28,),
         "placements": [{"start": 0, "size": 2}, {"start": 2, "size": 2}]},
        {"name": "4g.24gb", "profile_id": 0, "compute_slices": 4, "memory_slices": 4, "memory_gib": 23.44,
         "max_instances": 1, "media_extensions": False, "multiprocessors": (56,),
         "placements": [{"start": 0, "size": 4}]},
    ],
    "sources": [MIG_USER_GUIDE, "https://github.com/NVIDIA/go-nvml/blob/main/pkg/nvml/mock/shared/gpus/a30.go"],
    "notes": ["1g.6gb+me needs R470 or newer; 2g.12gb+me needs R525 or newer."],
}


def _mig_target(norm):
    """(capable, table key or None, ambiguity message or None) for a normalized GPU name.

    MIG-capable products: NVIDIA MIG User Guide, "Supported GPUs"
    (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-gpus.html).
    """
    if re.search(r"\bgh200\b", norm):
        if re.search(r"\b144\s?g", norm):
            return True, None, None
        return True, "H100_96GB", None
    if re.search(r"\bgb200\b", norm) or re.search(r"\bh20\b", norm):
        return True, None, None
    if re.search(r"\brtx pro (6000|5000|4500)\b.*\bblackwell\b", norm):
        return True, None, None
    if re.search(r"\bh200\b", norm):
        return True, "H200_141GB", None
    if re.search(r"\bh100\b", norm):
        if re.search(r"\bnvl\b", norm) or re.search(r"\b94\s?gb\b", norm):
            return True, "H100_94GB", None
        if re.search(r"\b96\s?gb\b", norm):
            return True, "H100_96GB", None
        return True, "H100_80GB", None
    if re.search(r"\ba100\b", norm):
        if re.search(r"\b80\s?gb\b", norm):
            return True, "A100_80GB", None
        if re.search(r"\b40\s?gb\b", norm):
            return True, "A100_40GB", None
        return True, None, "the name does not say 40GB or 80GB; use the full nvidia-smi name such as 'NVIDIA A100-SXM4-80GB'"
    if re.search(r"\ba30\b", norm):
        return True, "A30_24GB", None
    if re.search(r"\bb200\b", norm):
        return True, "B200_180GB", None
    return False, None, None


def mig_capable(gpu_name):
    """True when the GPU is on NVIDIA's list of MIG-capable products."""
    capable, _key, _why = _mig_target(normalize_gpu_name(gpu_name))
    return capable


def mig_table(gpu_name):
    """The MIG profile table of the GPU; CatalogError for GPUs without MIG or without a table."""
    norm = normalize_gpu_name(gpu_name)
    capable, key, why = _mig_target(norm)
    if not capable:
        raise CatalogError("GPU '%s' does not support MIG (MIG needs an A100, A30, H100, H200, GH200, B200 "
                           "or another GPU on NVIDIA's MIG supported list)" % gpu_name)
    if why:
        raise CatalogError("GPU '%s': cannot pick a MIG profile table: %s" % (gpu_name, why))
    if key is None:
        raise CatalogError("GPU '%s' supports MIG but its profile table is not in the gpuforge catalogue "
                           "(known: %s)" % (gpu_name, ", ".join(sorted(MIG_TABLES))))
    return MIG_TABLES[key]


def normalize_profile_name(value):
    """"MIG 3g.40gb" / "3G.40GB" / "mig-1g.10gb.me" -> "3g.40gb" / "1g.10gb+me"."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise CatalogError("MIG profile name must be a string, got %s %r" % (type(value).__name__, value))
    text = value.strip().lower()
    text = re.sub(r"^(nvidia\.com/)?mig[\s\-]+", "", text)
    text = re.sub(r"\.me$", "+me", text)
    if not re.match(r"^\d+g\.\d+gb(\+me)?$", text):
        raise CatalogError("'%s' is not a MIG profile name (expected <N>g.<M>gb, e.g. 3g.40gb or 1g.10gb+me)" % value)
    return text


def find_profile(table, name):
    for profile in table["profiles"]:
        if profile["name"] == name:
            return profile
    return None


def mig_fit(table, counts):
    """Place ``counts`` ({profile name: count}) on one GPU of ``table``.

    Returns a list of instances ``{profile, placement}`` in creation order (largest
    first, as NVIDIA asks for 3g profiles to be created before the smaller ones), or
    None when no combination of the published placements fits.
    """
    instances = []
    for name, count in counts.items():
        profile = find_profile(table, name)
        instances.extend([profile] * count)
    # Most constrained first: bigger, then fewer placements.
    instances.sort(key=lambda p: (-p["memory_slices"], -p["compute_slices"], len(p["placements"]), p["name"]))
    total_memory = table["memory_slices"]
    chosen = [None] * len(instances)
    failed = set()

    def search(i, used):
        if i == len(instances):
            return True
        state = (i, used)
        if state in failed:
            return False
        profile = instances[i]
        for place in profile["placements"]:
            mask = ((1 << place["size"]) - 1) << place["start"]
            if place["start"] + place["size"] > total_memory or used & mask:
                continue
            # Identical instances take ascending placements, so permutations are not retried.
            if i > 0 and instances[i - 1] is profile and chosen[i - 1]["start"] > place["start"]:
                continue
            chosen[i] = place
            if search(i + 1, used | mask):
                return True
        failed.add(state)
        return False

    if sum(p["compute_slices"] for p in instances) > table["compute_slices"]:
        return None
    if not search(0, 0):
        return None
    result = [{"profile": p, "placement": dict(chosen[i])} for i, p in enumerate(instances)]
    result.sort(key=lambda item: (-item["profile"]["memory_slices"], -item["profile"]["compute_slices"],
                                  item["placement"]["start"]))
    return result


def infer_mig_profile(table, memory_mib, multiprocessors=None, ofa_count=None):
    """The profile of an existing MIG device from its memory (and SM count when memory is shared).

    Returns (profile, None) or (None, reason). Profiles with the same memory slices
    (1g.20gb and 2g.20gb) are told apart by the SM count; "+me" profiles only when
    ``ofa_count`` says the device has the OFA.
    """
    known = [p for p in table["profiles"] if p["memory_gib"]]
    if not known:
        return None, "the %s table has no memory sizes to match against" % table["product"]
    target = memory_mib / 1024.0
    best = min(known, key=lambda p: abs(p["memory_gib"] - target))
    if abs(best["memory_gib"] - target) > 0.1 * best["memory_gib"]:
        return None, "%s MiB matches no %s profile" % (memory_mib, table["product"])
    group = [p for p in table["profiles"] if p["memory_slices"] == best["memory_slices"]]
    wants_me = bool(ofa_count) if ofa_count is not None else False
    group = [p for p in group if p["media_extensions"] == wants_me] or group
    if len(group) == 1:
        return group[0], None
    if multiprocessors is None:
        return None, ("%s MiB fits %s; the SM count (multiprocessor_count) is needed to tell them apart"
                      % (memory_mib, " or ".join(p["name"] for p in group)))
    scored = []
    for p in group:
        if p["multiprocessors"]:
            scored.append((min(abs(multiprocessors - sm) for sm in p["multiprocessors"]), p))
    if not scored:
        return None, "no SM counts are known for %s" % " or ".join(p["name"] for p in group)
    scored.sort(key=lambda item: item[0])
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None, "%s SMs fits %s equally" % (multiprocessors, " and ".join(p["name"] for _d, p in scored[:2]))
    return scored[0][1], None


# ---------------------------------------------------------------------------
# Versions


# A driver version or branch: names.DRIVER_VERSION_RE, the one definition the variable rules use too.
_DRIVER_RE = names.DRIVER_VERSION_RE
_CUDA_RE = re.compile(r"^(\d{1,2})\.(\d{1,2}|x)(?:\.(\d{1,5}))?$")


def _as_text(value, what):
    if isinstance(value, bool) or value is None:
        raise CatalogError("%s must be a version string, got %r" % (what, value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str):
        raise CatalogError("%s must be a version string, got %s" % (what, type(value).__name__))
    return value.strip()


def parse_driver(value, what="driver version"):
    """'535.54.03' -> (535, 54, 3); '535' (a branch) -> (535,); 'R535' -> (535,)."""
    text = _as_text(value, what)
    text = re.sub(r"^[rR]", "", text)
    match = _DRIVER_RE.match(text)
    if not match:
        raise CatalogError("%s '%s' is not an NVIDIA driver version (expected e.g. 535.54.03 or a branch like 535)"
                           % (what, value))
    return tuple(int(part) for part in match.groups() if part is not None)


def driver_key(parts, newest=True):
    """Comparable key. A bare branch stands for the newest release of that branch for a driver
    one has (``newest``), and for the first release for a minimum (CUDA 13.x needs ">= 580")."""
    padded = list(parts) + [INF if newest else -1] * (3 - len(parts))
    return tuple(padded)


def parse_cuda(value, what="CUDA version", allow_family=False):
    """'12.2' -> (12, 2, None); '12.2.1' -> (12, 2, 1); '12.x' -> (12, None, None) when allowed."""
    text = _as_text(value, what)
    text = re.sub(r"^(cuda\s*)", "", text, flags=re.IGNORECASE)
    match = _CUDA_RE.match(text)
    if not match:
        raise CatalogError("%s '%s' is not a CUDA version (expected e.g. 12.2 or 12.2.1)" % (what, value))
    major, minor, patch = match.groups()
    if minor == "x":
        if not allow_family or patch is not None:
            raise CatalogError("%s '%s': give a CUDA minor version such as %s.0" % (what, value, major))
        return int(major), None, None
    return int(major), int(minor), (int(patch) if patch is not None else None)


# ---------------------------------------------------------------------------
# CUDA toolkit -> minimum Linux x86_64 driver
#
# "CUDA Toolkit and Corresponding Driver Versions" (Toolkit Driver Version, Linux x86_64),
# CUDA Toolkit Release Notes, https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html
# (rows up to CUDA 13.1 from the 13.1 release notes; 13.1 Update 1 to 13.3 as the 13.2/13.3
# release notes list them, quoted in public repositories, and consistent with the captures:
# 590.48.01 prints CUDA 13.1, 595.58.03 prints 13.2). (major, minor, update) -> driver;
# 10.x and older use the toolkit's own patch number (10.2.89).

CUDA_RELEASE_NOTES = "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html"
CUDA_MINOR_COMPAT = "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html"

CUDA_TOOLKIT_DRIVERS = [
    ((13, 3, 1), "CUDA 13.3 Update 1", "610.43.02"),
    ((13, 3, 0), "CUDA 13.3 GA", "610.43.02"),
    ((13, 2, 1), "CUDA 13.2 Update 1", "595.58.03"),
    ((13, 2, 0), "CUDA 13.2 GA", "595.45.04"),
    ((13, 1, 1), "CUDA 13.1 Update 1", "590.48.01"),
    ((13, 1, 0), "CUDA 13.1 GA", "590.44.01"),
    ((13, 0, 2), "CUDA 13.0 Update 2", "580.95.05"),
    ((13, 0, 1), "CUDA 13.0 Update 1", "580.82.07"),
    ((13, 0, 0), "CUDA 13.0 GA", "580.65.06"),
    ((12, 9, 1), "CUDA 12.9 Update 1", "575.57.08"),
    ((12, 9, 0), "CUDA 12.9 GA", "575.51.03"),
    ((12, 8, 1), "CUDA 12.8 Update 1", "570.124.06"),
    ((12, 8, 0), "CUDA 12.8 GA", "570.26"),
    ((12, 6, 3), "CUDA 12.6 Update 3", "560.35.05"),
    ((12, 6, 2), "CUDA 12.6 Update 2", "560.35.03"),
    ((12, 6, 1), "CUDA 12.6 Update 1", "560.35.03"),
    ((12, 6, 0), "CUDA 12.6 GA", "560.28.03"),
    ((12, 5, 1), "CUDA 12.5 Update 1", "555.42.06"),
    ((12, 5, 0), "CUDA 12.5 GA", "555.42.02"),
    ((12, 4, 1), "CUDA 12.4 Update 1", "550.54.15"),
    ((12, 4, 0), "CUDA 12.4 GA", "550.54.14"),
    ((12, 3, 1), "CUDA 12.3 Update 1", "545.23.08"),
    ((12, 3, 0), "CUDA 12.3 GA", "545.23.06"),
    ((12, 2, 2), "CUDA 12.2 Update 2", "535.104.05"),
    ((12, 2, 1), "CUDA 12.2 Update 1", "535.86.09"),
    ((12, 2, 0), "CUDA 12.2 GA", "535.54.03"),
    ((12, 1, 1), "CUDA 12.1 Update 1", "530.30.02"),
    ((12, 1, 0), "CUDA 12.1 GA", "530.30.02"),
    ((12, 0, 1), "CUDA 12.0 Update 1", "525.85.12"),
    ((12, 0, 0), "CUDA 12.0 GA", "525.60.13"),
    ((11, 8, 0), "CUDA 11.8 GA", "520.61.05"),
    ((11, 7, 1), "CUDA 11.7 Update 1", "515.48.07"),
    ((11, 7, 0), "CUDA 11.7 GA", "515.43.04"),
    ((11, 6, 2), "CUDA 11.6 Update 2", "510.47.03"),
    ((11, 6, 1), "CUDA 11.6 Update 1", "510.47.03"),
    ((11, 6, 0), "CUDA 11.6 GA", "510.39.01"),
    ((11, 5, 2), "CUDA 11.5 Update 2", "495.29.05"),
    ((11, 5, 1), "CUDA 11.5 Update 1", "495.29.05"),
    ((11, 5, 0), "CUDA 11.5 GA", "495.29.05"),
    ((11, 4, 4), "CUDA 11.4 Update 4", "470.82.01"),
    ((11, 4, 3), "CUDA 11.4 Update 3", "470.82.01"),
    ((11, 4, 2), "CUDA 11.4 Update 2", "470.57.02"),
    ((11, 4, 1), "CUDA 11.4 Update 1", "470.57.02"),
    ((11, 4, 0), "CUDA 11.4.0 GA", "470.42.01"),
    ((11, 3, 1), "CUDA 11.3.1 Update 1", "465.19.01"),
    ((11, 3, 0), "CUDA 11.3.0 GA", "465.19.01"),
    ((11, 2, 2), "CUDA 11.2.2 Update 2", "460.32.03"),
    ((11, 2, 1), "CUDA 11.2.1 Update 1", "460.32.03"),
    ((11, 2, 0), "CUDA 11.2.0 GA", "460.27.03"),
    ((11, 1, 1), "CUDA 11.1.1 Update 1", "455.32"),
    ((11, 1, 0), "CUDA 11.1 GA", "455.23"),
    ((11, 0, 3), "CUDA 11.0.3 Update 1", "450.51.06"),
    ((11, 0, 2), "CUDA 11.0.2 GA", "450.51.05"),
    ((11, 0, 1), "CUDA 11.0.1 RC", "450.36.06"),
    ((10, 2, 89), "CUDA 10.2.89", "440.33"),
    ((10, 1, 105), "CUDA 10.1 (10.1.105 general release, and updates)", "418.39"),
    ((10, 0, 130), "CUDA 10.0.130", "410.48"),
    ((9, 2, 148), "CUDA 9.2 (9.2.148 Update 1)", "396.37"),
    ((9, 2, 88), "CUDA 9.2 (9.2.88)", "396.26"),
    ((9, 1, 85), "CUDA 9.1 (9.1.85)", "390.46"),
    ((9, 0, 76), "CUDA 9.0 (9.0.76)", "384.81"),
    ((8, 0, 61), "CUDA 8.0 (8.0.61 GA2)", "375.26"),
    ((8, 0, 44), "CUDA 8.0 (8.0.44)", "367.48"),
    ((7, 5, 16), "CUDA 7.5 (7.5.16)", "352.31"),
    ((7, 0, 28), "CUDA 7.0 (7.0.28)", "346.46"),
]

# The release a bare "M.m" means: the GA (11.0 was released as 11.0.2 GA after an 11.0.1 RC).
_CUDA_GA = {(11, 0): (11, 0, 2)}

# Minimum driver for CUDA minor version compatibility (applications built with any
# toolkit of the major family). 12.x and 11.x: the CUDA release notes table "CUDA Toolkit
# and Minimum Required Driver Version for CUDA Minor Version Compatibility"
# (>=525.60.13, >=450.80.02; 11.0 itself shipped with 450.36.06 but the 11.x family needs
# 450.80.02). 13.x: ">= 580" (release notes 13.x and CUDA_MINOR_COMPAT). 10.x and older
# have no minor version compatibility: the toolkit's own driver is the minimum.
CUDA_MINOR_COMPAT_DRIVERS = {13: "580", 12: "525.60.13", 11: "450.80.02"}


def cuda_toolkit_entry(value):
    """The release-notes row for a CUDA version (GA for 'M.m'; newest listed update <= p for 'M.m.p')."""
    major, minor, patch = parse_cuda(value)
    rows = [row for row in CUDA_TOOLKIT_DRIVERS if row[0][:2] == (major, minor)]
    if not rows:
        known = sorted({"%d.%d" % row[0][:2] for row in CUDA_TOOLKIT_DRIVERS}, key=lambda v: tuple(map(int, v.split("."))))
        raise CatalogError("CUDA %s is not in NVIDIA's toolkit/driver table (known: %s ... %s)"
                           % (value, known[0], known[-1]))
    rows.sort(key=lambda row: row[0])
    if patch is None:
        wanted = _CUDA_GA.get((major, minor))
        if wanted:
            return [row for row in rows if row[0] == wanted][0]
        return rows[0]
    older = [row for row in rows if row[0][2] <= patch]
    return older[-1] if older else rows[0]


def cuda_min_driver(value, compat="toolkit"):
    """Minimum Linux driver (a version string) for a CUDA version."""
    if compat not in ("toolkit", "minor"):
        raise CatalogError("compat must be 'toolkit' or 'minor', got %r" % (compat,))
    if compat == "minor":
        major, _minor, _patch = parse_cuda(value, allow_family=True)
        if major in CUDA_MINOR_COMPAT_DRIVERS:
            return CUDA_MINOR_COMPAT_DRIVERS[major]
        if _minor is None:
            raise CatalogError("CUDA %s: minor version compatibility exists for 11.x, 12.x and 13.x only" % value)
    return cuda_toolkit_entry(value)[2]


def driver_supports_cuda(driver, cuda, compat="toolkit"):
    need = parse_driver(cuda_min_driver(cuda, compat))
    have = parse_driver(driver)
    return driver_key(have) >= driver_key(need, newest=False)


def max_cuda_for_driver(driver, compat="toolkit"):
    """Highest CUDA major.minor whose toolkit (or minor-compat family) the driver supports."""
    if compat not in ("toolkit", "minor"):
        raise CatalogError("compat must be 'toolkit' or 'minor', got %r" % (compat,))
    have = driver_key(parse_driver(driver))
    best = None
    for version, _label, minimum in CUDA_TOOLKIT_DRIVERS:
        if compat == "minor" and version[0] in CUDA_MINOR_COMPAT_DRIVERS:
            minimum = CUDA_MINOR_COMPAT_DRIVERS[version[0]]
        if driver_key(parse_driver(minimum), newest=False) <= have and (best is None or version > best):
            best = version
    if best is None:
        raise CatalogError("driver %s is older than every CUDA toolkit in the table (oldest: CUDA 7.0, 346.46)"
                           % (driver,))
    return "%d.%d" % best[:2]


# ---------------------------------------------------------------------------
# Architectures
#
# Compute capability per architecture, first/last CUDA toolkit and last driver branch:
#   NVIDIA Data Center Drivers, "CUDA Toolkit, Driver, and Architecture Matrix",
#   https://docs.nvidia.com/datacenter/tesla/drivers/cuda-toolkit-driver-and-architecture-matrix.html
#   (Kepler: last driver R470; Maxwell, Pascal, Volta: last driver R580, last toolkit 12.x;
#   "The release 580 series will be the last to support GPUs based on the Maxwell, Pascal,
#   and Volta architectures", https://forums.developer.nvidia.com/t/unix-graphics-feature-deprecation-schedule/60588).
# min_driver: the driver of the first toolkit that supports the compute capability
#   (CUDA 8.0 for Pascal, 9.0 Volta, 10.0 Turing, 11.0 GA100, 11.1 GA10x, 11.8 Ada and
#   Hopper, 12.8 Blackwell, 12.9 Blackwell Ultra 10.3) from CUDA_TOOLKIT_DRIVERS.
# open kernel modules: Turing and newer only (they need the GSP); Grace Hopper and
#   Blackwell support only the open modules ("NVIDIA Transitions Fully Towards
#   Open-Source GPU Kernel Modules", OPEN_MODULES_BLOG below);
#   the open modules were first released with R515.
# family: the value GPU Feature Discovery writes to nvidia.com/gpu.family
#   (getArchFamily, github.com/NVIDIA/k8s-device-plugin internal/lm/resource.go).

ARCH_MATRIX = "https://docs.nvidia.com/datacenter/tesla/drivers/cuda-toolkit-driver-and-architecture-matrix.html"
OPEN_MODULES_BLOG = "https://developer.nvidia.com/blog/nvidia-transitions-fully-towards-open-source-gpu-kernel-modules/"
OPEN_MODULES_FIRST_BRANCH = 515

ARCHITECTURES = {
    "kepler": {"name": "Kepler", "family": "kepler", "last_branch": 470, "open_modules": "unsupported"},
    "maxwell": {"name": "Maxwell", "family": "maxwell", "last_branch": 580, "open_modules": "unsupported"},
    "pascal": {"name": "Pascal", "family": "pascal", "last_branch": 580, "open_modules": "unsupported"},
    "volta": {"name": "Volta", "family": "volta", "last_branch": 580, "open_modules": "unsupported"},
    "turing": {"name": "Turing", "family": "turing", "last_branch": None, "open_modules": "supported"},
    "ampere": {"name": "Ampere", "family": "ampere", "last_branch": None, "open_modules": "supported"},
    "ada": {"name": "Ada Lovelace", "family": "ada-lovelace", "last_branch": None, "open_modules": "supported"},
    "hopper": {"name": "Hopper", "family": "hopper", "last_branch": None, "open_modules": "supported"},
    "blackwell": {"name": "Blackwell", "family": "blackwell", "last_branch": None, "open_modules": "required"},
}

# compute capability -> (architecture, first CUDA toolkit, last CUDA toolkit major or None)
COMPUTE_CAPABILITIES = {
    "3.0": ("kepler", "6.0", 10), "3.5": ("kepler", "6.0", 11), "3.7": ("kepler", "6.0", 11),
    "5.0": ("maxwell", "6.5", 12), "5.2": ("maxwell", "6.5", 12),
    "6.0": ("pascal", "8.0", 12), "6.1": ("pascal", "8.0", 12),
    "7.0": ("volta", "9.0", 12),
    "7.5": ("turing", "10.0", None),
    "8.0": ("ampere", "11.0", None), "8.6": ("ampere", "11.1", None),
    "8.9": ("ada", "11.8", None),
    "9.0": ("hopper", "11.8", None),
    "10.0": ("blackwell", "12.8", None), "10.3": ("blackwell", "12.9", None), "12.0": ("blackwell", "12.8", None),
}

# (pattern on normalize_gpu_name(), compute capability, overrides). First match wins,
# so specific names come before general ones. Compute capabilities: NVIDIA "CUDA GPUs"
# list, https://developer.nvidia.com/cuda-gpus .
GPU_MODELS = [
    # Blackwell
    (r"\b(gb300|b300)\b", "10.3", {}),
    # HGX B200 needs driver 570.133.20 or later (GPU Operator platform support note;
    # the MIG user guide gives the same minimum for MIG on B200).
    (r"\bb200\b", "10.0", {"min_driver": "570.133.20"}),
    (r"\b(gb200|b100)\b", "10.0", {}),
    # RTX PRO Blackwell boards need R575 (>= 575.51.03, MIG user guide "Deployment Considerations").
    (r"\brtx pro \d{4}\b.*\bblackwell\b", "12.0", {"min_driver": "575.51.03"}),
    (r"\brtx 50[5-9]0\b", "12.0", {}),
    # Hopper; Grace Hopper needs the open kernel modules.
    (r"\bgh200\b", "9.0", {"open_modules": "required"}),
    (r"\b(h100|h200|h800|h20)\b", "9.0", {}),
    # Ada Lovelace
    (r"\bada\b", "8.9", {}),
    (r"\b(l4|l40|l40s|l40g|l20)\b", "8.9", {}),
    (r"\brtx 40[5-9]0\b", "8.9", {}),
    # Ampere
    (r"\b(a100|a30|a800)\b", "8.0", {}),
    (r"\b(a10|a10g|a10m|a16|a40|a2)\b", "8.6", {}),
    (r"\brtx a\d{4}\b", "8.6", {}),
    (r"\brtx 30[5-9]0\b", "8.6", {}),
    # Turing
    (r"\b(t4|t4g)\b", "7.5", {}),
    (r"\bt(400|500|550|600|1000|1200)\b", "7.5", {}),
    (r"\b(rtx 20[6-8]0|titan rtx)\b", "7.5", {}),
    (r"\bgtx 16[5-6]0\b", "7.5", {}),
    (r"\bquadro rtx \d{4}\b", "7.5", {}),
    # Volta
    (r"\b(v100|v100s|titan v|quadro gv100)\b", "7.0", {}),
    # Pascal
    (r"\b(p100|quadro gp100)\b", "6.0", {}),
    (r"\b(p4|p6|p10|p40)\b", "6.1", {}),
    (r"\bgtx 10[5-8]0\b", "6.1", {}),
    (r"\bgt 1030\b", "6.1", {}),
    (r"\btitan xp\b|\btitan x pascal\b", "6.1", {}),
    (r"\bquadro p\d{3,4}\b", "6.1", {}),
    # Maxwell
    (r"\b(m4|m6|m40|m60)\b", "5.2", {}),
    (r"\bm10\b", "5.0", {}),
    (r"\bgtx (950|960|970|980)\b|\bgtx titan x\b", "5.2", {}),
    (r"\bgtx 750\b", "5.0", {}),
    (r"\bquadro m\d{3,4}\b", "5.2", {}),
    # Kepler (data center boards)
    (r"\bk80\b", "3.7", {}),
    (r"\b(k40|k40m|k40c|k20|k20x|k20m)\b", "3.5", {}),
    (r"\b(k10|grid k1|grid k2)\b", "3.0", {}),
]


def _first_driver(cuda):
    """Oldest driver listed for a CUDA major.minor (None before CUDA 7.0, where the table starts)."""
    major, minor, _patch = parse_cuda(cuda)
    rows = [row for row in CUDA_TOOLKIT_DRIVERS if row[0][:2] == (major, minor)]
    if not rows:
        return None
    return min(rows, key=lambda row: driver_key(parse_driver(row[2])))[2]


def gpu_architecture(gpu_name):
    """Architecture facts for a GPU name, or None when the name is not in the catalogue."""
    norm = normalize_gpu_name(gpu_name)
    for pattern, capability, overrides in GPU_MODELS:
        if re.search(pattern, norm):
            arch_key, first_cuda, last_cuda_major = COMPUTE_CAPABILITIES[capability]
            arch = ARCHITECTURES[arch_key]
            min_driver = overrides.get("min_driver") or _first_driver(first_cuda)
            return {
                "name": arch["name"],
                "family": arch["family"],
                "compute_capability": capability,
                "min_driver": min_driver,
                "last_driver_branch": arch["last_branch"],
                "first_cuda": first_cuda,
                "last_cuda_major": last_cuda_major,
                "open_kernel_modules": overrides.get("open_modules", arch["open_modules"]),
            }
    return None


def driver_gpu_problems(driver, gpu_name, kernel_modules="proprietary"):
    """Why a driver cannot drive a GPU: a list of sentences (empty when it can).

    CatalogError for bad input and for GPU names not in the catalogue.
    """
    if kernel_modules not in ("proprietary", "open"):
        raise CatalogError("kernel_modules must be 'proprietary' or 'open', got %r" % (kernel_modules,))
    parts = parse_driver(driver)
    branch = parts[0]
    arch = gpu_architecture(gpu_name)
    if arch is None:
        raise CatalogError("GPU '%s' is not in the gpuforge catalogue; its architecture is unknown" % gpu_name)
    what = "%s (%s, compute capability %s)" % (gpu_name, arch["name"], arch["compute_capability"])
    if len(parts) > 1:
        shown = "driver %s" % _as_text(driver, "driver version")
        branch_note = "%s is branch R%d" % (shown, branch)
    else:
        shown = "driver branch R%d" % branch
        branch_note = "%s is newer" % shown
    problems = []
    if arch["min_driver"] and driver_key(parts) < driver_key(parse_driver(arch["min_driver"]), newest=False):
        problems.append("%s needs driver %s or newer; %s is older" % (what, arch["min_driver"], shown))
    if arch["last_driver_branch"] and branch > arch["last_driver_branch"]:
        problems.append("%s is supported only by driver branches up to R%d; %s"
                        % (what, arch["last_driver_branch"], branch_note))
    if kernel_modules == "open":
        if arch["open_kernel_modules"] == "unsupported":
            problems.append("%s cannot use the open kernel modules (they need Turing or newer); "
                            "use the proprietary modules" % what)
        elif branch < OPEN_MODULES_FIRST_BRANCH:
            problems.append("the open kernel modules exist from driver branch R%d on; %s is older"
                            % (OPEN_MODULES_FIRST_BRANCH, shown))
    elif arch["open_kernel_modules"] == "required":
        problems.append("%s is supported only with the open kernel modules (kernel_modules=open)" % what)
    return problems


def cuda_gpu_problems(cuda, gpu_name):
    """Why a CUDA toolkit cannot build for a GPU (architecture too new or dropped)."""
    major, minor, _patch = parse_cuda(cuda)
    arch = gpu_architecture(gpu_name)
    if arch is None:
        raise CatalogError("GPU '%s' is not in the gpuforge catalogue; its architecture is unknown" % gpu_name)
    what = "%s (%s, compute capability %s)" % (gpu_name, arch["name"], arch["compute_capability"])
    problems = []
    first = parse_cuda(arch["first_cuda"])
    if (major, minor) < first[:2]:
        problems.append("CUDA %s cannot target %s; support starts with CUDA %s" % (cuda, what, arch["first_cuda"]))
    if arch["last_cuda_major"] is not None and major > arch["last_cuda_major"]:
        problems.append("CUDA %s cannot target %s; the last toolkit for it is CUDA %d.x"
                        % (cuda, what, arch["last_cuda_major"]))
    return problems


# ---------------------------------------------------------------------------
# A driver against the GPUs of a host


def _gpu_list(gpus):
    """The GPU names from ansible_facts['nvidia'] (the dict or its 'gpus' list) or a list of names."""
    if isinstance(gpus, Mapping):
        if "gpus" not in gpus:
            raise CatalogError("gpus must be ansible_facts['nvidia'], its 'gpus' list "
                               "or a list of GPU names; the dict has no 'gpus' key")
        gpus = gpus["gpus"]
    if gpus is None:
        return []
    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Sequence):
        raise CatalogError("gpus must be a list, got %s" % type(gpus).__name__)
    result = []
    for position, gpu in enumerate(gpus):
        if isinstance(gpu, Mapping):
            name = gpu.get("name")
            index = gpu.get("index", position)
        else:
            name, index = gpu, position
        if isinstance(name, bool) or not isinstance(name, str) or not name.strip():
            raise CatalogError("gpus[%d] has no GPU name (the 'name' key of "
                               "ansible_facts['nvidia']['gpus']), got %r" % (position, gpu))
        result.append((index, str(name)))
    return result


def driver_check(driver, gpus, cuda=None, kernel_modules="proprietary", cuda_compat="toolkit", strict=False):
    """Problems with installing ``driver`` for these GPUs (and CUDA toolkit); an empty list means none."""
    parts = parse_driver(driver)
    problems = []
    for index, gpu_name in _gpu_list(gpus):
        prefix = "GPU %s: " % index
        if gpu_architecture(gpu_name) is None:
            if strict:
                problems.append(prefix + "'%s' is not in the gpuforge catalogue; its driver support is unknown"
                                % gpu_name)
            continue
        problems.extend(prefix + text for text in driver_gpu_problems(driver, gpu_name, kernel_modules))
        if cuda is not None:
            problems.extend(prefix + text for text in cuda_gpu_problems(cuda, gpu_name))
    if cuda is not None and not driver_supports_cuda(driver, cuda, cuda_compat):
        needed = cuda_min_driver(cuda, cuda_compat)
        shown = "driver %s" % driver if len(parts) > 1 else "driver branch R%d" % parts[0]
        text = "%s supports CUDA up to %s; CUDA %s needs driver %s or newer" % (
            shown, max_cuda_for_driver(driver, cuda_compat), cuda, needed)
        if cuda_compat == "toolkit":
            try:
                minor = cuda_min_driver(cuda, "minor")
            except CatalogError:
                minor = None
            if minor and minor != needed and driver_supports_cuda(driver, cuda, "minor"):
                text += " (the driver runs it with CUDA minor version compatibility, cuda_compat=minor)"
        problems.append(text)
    return problems


# ---------------------------------------------------------------------------
# Kubernetes label values
#
# A label value is empty or at most 63 characters of [A-Za-z0-9._-] that begin and end
# with an alphanumeric character (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/).

LABEL_VALUE_RE = names.LABEL_VALUE_RE
LABEL_NAME_RE = names.LABEL_NAME_RE
DNS_SUBDOMAIN_RE = names.DNS1123_SUBDOMAIN_RE


def label_value(text):
    """Any text as a valid label value: spaces -> '-', other characters dropped, 63 characters at most."""
    value = re.sub(r"\s+", "-", str(text).strip())
    value = re.sub(r"[^A-Za-z0-9._-]", "", value)
    value = value[:63]
    value = re.sub(r"^[^A-Za-z0-9]+", "", value)
    value = re.sub(r"[^A-Za-z0-9]+$", "", value)
    return value


def is_label_value(value):
    return names.is_label_value(value)


def is_label_key(key):
    """A label key with a prefix (those derived from GPUs all carry one: nvidia.com/...)."""
    return names.is_label_key(key, prefixed=True)
