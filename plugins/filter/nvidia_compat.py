# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""NVIDIA driver / CUDA / GPU compatibility filters of gpuforge.cluster.

* ``cuda_min_driver(cuda_version, compat)``: minimum Linux driver for a CUDA toolkit.
* ``driver_supports_cuda(driver_version, cuda_version, compat)``: bool.
* ``driver_branch(driver_version)``: "535" for "535.54.03".
* ``max_cuda_for_driver(driver_version, compat)``: highest CUDA major.minor of a driver.
* ``gpu_architecture(gpu_name, strict)``: architecture and compute capability of a GPU.
* ``driver_supports_gpu(driver, gpu_name, kernel_modules)``: bool.
* ``nvidia_driver_check(driver, gpus, cuda, kernel_modules, ...)``: list of problems.

Data and sources: ``plugins/module_utils/nvidia_catalog.py`` and docs/gpu-filters.md.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils.nvidia_catalog import (
    CatalogError,
    cuda_min_driver as _cuda_min_driver,
    driver_check,
    driver_gpu_problems,
    driver_supports_cuda as _driver_supports_cuda,
    gpu_architecture as _gpu_architecture,
    max_cuda_for_driver as _max_cuda_for_driver,
    parse_driver,
)

COMPAT = ("toolkit", "minor")
KERNEL_MODULES = ("proprietary", "open")


def _call(filter_name, function, *args):
    try:
        return function(*args)
    except CatalogError as exc:
        raise AnsibleFilterError("%s: %s" % (filter_name, exc)) from exc


def _choice(filter_name, option, value, choices):
    if value not in choices:
        raise AnsibleFilterError("%s: %s must be one of %s, got %r" % (filter_name, option, ", ".join(choices), value))
    return value


def _bool(filter_name, option, value):
    if not isinstance(value, bool):
        raise AnsibleFilterError("%s: %s must be true or false, got %r" % (filter_name, option, value))
    return value


def cuda_min_driver(cuda_version, compat="toolkit"):
    """Minimum Linux driver for a CUDA version ('toolkit': the bundled driver; 'minor': minor-version compatibility)."""
    _choice("cuda_min_driver", "compat", compat, COMPAT)
    return _call("cuda_min_driver", _cuda_min_driver, cuda_version, compat)


def driver_supports_cuda(driver_version, cuda_version, compat="toolkit"):
    """True when the driver runs applications built with that CUDA toolkit."""
    _choice("driver_supports_cuda", "compat", compat, COMPAT)
    return _call("driver_supports_cuda", _driver_supports_cuda, driver_version, cuda_version, compat)


def driver_branch(driver_version):
    """The driver branch: '535.54.03' -> '535'."""
    return str(_call("driver_branch", parse_driver, driver_version)[0])


def max_cuda_for_driver(driver_version, compat="toolkit"):
    """Highest CUDA major.minor the driver supports ('12.2' for 535.54.03, as nvidia-smi prints)."""
    _choice("max_cuda_for_driver", "compat", compat, COMPAT)
    return _call("max_cuda_for_driver", _max_cuda_for_driver, driver_version, compat)


def gpu_architecture(gpu_name, strict=False):
    """{name, family, compute_capability, ...} of a GPU; None (or an error when strict) for unknown GPUs."""
    _bool("gpu_architecture", "strict", strict)
    arch = _call("gpu_architecture", _gpu_architecture, gpu_name)
    if arch is None and strict:
        raise AnsibleFilterError("gpu_architecture: GPU '%s' is not in the gpuforge catalogue" % gpu_name)
    return arch


def driver_supports_gpu(driver, gpu_name, kernel_modules="proprietary"):
    """True when the driver (version or branch) with that kernel module flavour drives the GPU."""
    _choice("driver_supports_gpu", "kernel_modules", kernel_modules, KERNEL_MODULES)
    return not _call("driver_supports_gpu", driver_gpu_problems, driver, gpu_name, kernel_modules)


def nvidia_driver_check(driver, gpus, cuda=None, kernel_modules="proprietary", cuda_compat="toolkit", strict=False):
    """Problems with installing ``driver`` for these GPUs (and CUDA toolkit); an empty list means none."""
    name = "nvidia_driver_check"
    _choice(name, "kernel_modules", kernel_modules, KERNEL_MODULES)
    _choice(name, "cuda_compat", cuda_compat, COMPAT)
    _bool(name, "strict", strict)
    return _call(name, driver_check, driver, gpus, cuda, kernel_modules, cuda_compat, strict)


class FilterModule(object):
    """gpuforge.cluster driver / CUDA compatibility filters."""

    def filters(self):
        return {
            "cuda_min_driver": cuda_min_driver,
            "driver_supports_cuda": driver_supports_cuda,
            "driver_branch": driver_branch,
            "max_cuda_for_driver": max_cuda_for_driver,
            "gpu_architecture": gpu_architecture,
            "driver_supports_gpu": driver_supports_gpu,
            "nvidia_driver_check": nvidia_driver_check,
        }
