#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_gpu_facts
short_description: Report the NVIDIA GPUs of a host, their driver and their MIG layout
version_added: "0.1.0"
description:
  - Returns C(ansible_facts['nvidia']) describing the NVIDIA GPUs of the host, the loaded driver
    and CUDA version as C(nvidia-smi) reports them, and the MIG devices of GPUs in MIG mode.
  - Read-only. It reads the PCI devices in sysfs (O(sysfs_pci_path)), or runs C(lspci -n -D) when sysfs
    cannot be read, to tell whether an NVIDIA display/3D controller (vendor C(0x10de), PCI class
    C(0x03xx)) exists; then it runs C(nvidia-smi -q -x) and parses its XML.
  - When C(nvidia-smi -q -x) says the XML output is not supported (C(Invalid combination of input arguments),
    C(not supported), C(unknown option)) but C(nvidia-smi -q) works, the plain-text output is parsed instead,
    with a warning. This is rare (some vGPU guest and very old drivers).
  - When a GPU is in MIG mode, C(nvidia-smi -L) is run as well for the MIG profile names and MIG UUIDs,
    which the XML lacks. C(nvidia-smi --query-gpu=uuid,compute_cap --format=csv,noheader) is run for the
    compute capability; drivers older than 510 do not know that field and it stays C(null).
  - A missing, failing or unparsable C(nvidia-smi) is not a module failure; it is reported in C(error) with
    C(driver_loaded=false). A host without NVIDIA device returns C(present=false) and C(gpu_count=0).
  - Commands run with C(LC_ALL=C) so their output can be parsed.
options:
  nvidia_smi:
    description:
      - The C(nvidia-smi) to run, a command name looked up in C(PATH) (and C(/usr/local/nvidia/bin)) or an absolute path.
    type: str
    default: nvidia-smi
  sysfs_pci_path:
    description:
      - Folder of the PCI devices in sysfs, one entry per device with C(vendor), C(device) and C(class) files.
      - When it is missing, unreadable or empty, C(lspci -n -D) is used instead.
    type: path
    default: /sys/bus/pci/devices
  simulated_smi_xml:
    description:
      - Path on the managed host to a captured C(nvidia-smi -q -x) output. When set, the host is reported as having
        the GPUs of that file (C(present=true), C(driver_loaded=true), C(simulated=true)); C(nvidia-smi) is not run
        and the PCI devices are not scanned (C(pci_devices) is derived from the file).
      - Lab hosts use it to stand in for GPU hosts. A missing or unparsable file fails the module, naming this option.
    type: path
attributes:
  check_mode:
    support: full
    description: The module never changes the host; it runs unchanged in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
  facts:
    support: full
    description: Returns C(ansible_facts['nvidia']).
notes:
  - GPUs are listed in the order of the C(nvidia-smi) output, which is PCI bus order and the order of
    C(nvidia-smi)'s own indexes; C(index) is the position in that list. C(minor_number) (the N of C(/dev/nvidiaN))
    is reported separately because it can differ (for example on Azure NC-series hosts).
  - C(gpu_count) and C(gpus) describe the GPUs the output describes. When C(attached_gpus) disagrees (trimmed or
    broken output) a warning says so.
  - Values C(nvidia-smi) prints as C(N/A), C(Not Found), C(Not Supported) and the like are returned as C(null).
seealso:
  - name: nvidia-smi documentation
    description: The NVIDIA System Management Interface.
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
  - name: NVIDIA MIG user guide
    description: MIG modes, profiles, GPU and compute instances.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
author:
  - gpuforge maintainers
"""

EXAMPLES = r"""
- name: Gather the NVIDIA GPU facts
  gpuforge.cluster.nvidia_gpu_facts:

- name: Stop when an NVIDIA GPU is there but the driver does not answer
  ansible.builtin.assert:
    that: ansible_facts['nvidia']['driver_loaded'] | bool or not ansible_facts['nvidia']['present'] | bool
    fail_msg: "{{ inventory_hostname }}: {{ ansible_facts['nvidia']['error'] }}"

- name: Lab host standing in for a GPU host
  gpuforge.cluster.nvidia_gpu_facts:
    simulated_smi_xml: "{{ gpuforge_gpu_simulated_smi_xml if gpuforge_gpu_simulated | default(false) | bool else omit }}"

- name: List the MIG devices
  ansible.builtin.debug:
    msg: "{{ ansible_facts['nvidia']['gpus'] | map(attribute='mig_devices') | flatten }}"

- name: Use an nvidia-smi outside PATH
  gpuforge.cluster.nvidia_gpu_facts:
    nvidia_smi: /usr/local/nvidia/bin/nvidia-smi
"""

RETURN = r"""
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    nvidia:
      description: The NVIDIA GPUs of the host.
      returned: always
      type: dict
      contains:
        present:
          description:
            - Whether an NVIDIA display/3D PCI device (vendor C(0x10de), class C(0x03xx)) exists; also true when
              C(nvidia-smi) describes GPUs that the PCI scan did not see, and in simulation.
          type: bool
          sample: true
        driver_loaded:
          description: Whether C(nvidia-smi) answered with an inventory that could be parsed.
          type: bool
          sample: true
        driver_version:
          description: Driver version as C(nvidia-smi) reports it; C(null) when it did not answer or does not say.
          type: str
          sample: "535.54.03"
        cuda_version:
          description: Highest CUDA version the driver supports, as C(nvidia-smi) reports it; C(null) when absent or C(Not Found).
          type: str
          sample: "12.2"
        attached_gpus:
          description: C(attached_gpus) as C(nvidia-smi) reports it; C(null) when absent.
          type: int
          sample: 4
        gpu_count:
          description: Number of GPUs in C(gpus).
          type: int
          sample: 4
        gpus:
          description: One entry per GPU, in the order of the C(nvidia-smi) output.
          type: list
          elements: dict
          contains:
            index:
              description: Position in the list (0-based), which is C(nvidia-smi)'s index.
              type: int
            uuid:
              description: GPU UUID (C(GPU-...)).
              type: str
            name:
              description: Product name.
              type: str
              sample: NVIDIA A100-SXM4-80GB
            pci_bus_id:
              description: PCI bus id as C(nvidia-smi) prints it.
              type: str
              sample: "00000000:07:00.0"
            pci_address:
              description: The same address in sysfs form (4-digit domain, lower case), as in C(pci_devices).
              type: str
              sample: "0000:07:00.0"
            memory_total_mib:
              description: Total framebuffer memory in MiB.
              type: int
              sample: 81920
            mig_capable:
              description: Whether the GPU reports a MIG mode (not C(N/A)).
              type: bool
            mig_enabled:
              description: Current MIG mode; false when disabled or C(N/A).
              type: bool
            mig_pending:
              description: Pending MIG mode (applies after a GPU reset); C(null) when C(N/A).
              type: bool
            mig_devices:
              description:
                - MIG devices; empty unless MIG is enabled. Keys C(index), C(gpu_instance_id), C(compute_instance_id),
                  C(memory_total_mib), C(bar1_memory_total_mib), C(sm_count), C(attributes) (every count of the
                  device's shared attributes), C(profile) (such as C(3g.40gb)) and C(uuid) (C(MIG-...)); the last
                  two come from C(nvidia-smi -L) and are C(null) in simulation.
              type: list
              elements: dict
              sample: [{"index": 0, "gpu_instance_id": 3, "compute_instance_id": 0, "memory_total_mib": 19968,
                        "bar1_memory_total_mib": 32767, "sm_count": 14, "profile": null, "uuid": null,
                        "attributes": {"multiprocessor_count": 14, "copy_engine_count": 1, "encoder_count": 0,
                                       "decoder_count": 1, "ofa_count": 0, "jpg_count": 0}}]
            product_brand:
              description: Product brand (C(NVIDIA), C(Tesla), C(GeForce), C(Quadro), ...).
              type: str
            product_architecture:
              description: Architecture (C(Ampere), C(Hopper), ...); reported by drivers from about R470 (DTD v11) on.
              type: str
            compute_capability:
              description: CUDA compute capability (C(8.0)) from C(--query-gpu=compute_cap); C(null) when unknown.
              type: str
            minor_number:
              description: N of the device file C(/dev/nvidiaN); C(null) on Windows.
              type: int
            serial:
              description: Board serial number.
              type: str
            vbios_version:
              description: VBIOS version.
              type: str
            persistence_mode:
              description: Whether persistence mode is on; C(null) when C(N/A) (Windows).
              type: bool
            ecc_enabled:
              description: Current ECC mode; C(null) when the GPU has no ECC.
              type: bool
            ecc_pending:
              description: Pending ECC mode; C(null) when the GPU has no ECC.
              type: bool
            compute_mode:
              description: Compute mode (C(Default), C(Exclusive_Process), C(Prohibited)).
              type: str
            driver_model:
              description: Windows driver model (C(WDDM), C(TCC)); C(null) on Linux.
              type: str
            addressing_mode:
              description: Addressing mode (C(None), C(HMM), C(ATS)) where reported.
              type: str
            virtualization_mode:
              description: Virtualization mode (C(None), C(Pass-Through), C(VGPU), ...) where reported.
              type: str
            gsp_firmware_version:
              description: GSP firmware version where reported.
              type: str
            board_part_number:
              description: Board part number.
              type: str
            gpu_part_number:
              description: GPU part number.
              type: str
            module_id:
              description: Module id (SXM slot) where reported.
              type: int
            pci_device_id:
              description: PCI device id (C(0x20b2)), from C(nvidia-smi)'s combined device/vendor id; C(null) when unknown.
              type: str
            pci_device_id_raw:
              description: The combined device/vendor id as C(nvidia-smi) prints it (C(20B210DE)).
              type: str
            pci_class:
              description: PCI class and subclass (C(0x0302)) where C(nvidia-smi) reports them (DTD v13).
              type: str
            pcie_link_gen_max:
              description: Maximum PCIe generation.
              type: int
            pcie_link_gen_current:
              description: Current PCIe generation.
              type: int
            pcie_link_width_max:
              description: Maximum PCIe link width (lanes).
              type: int
            pcie_link_width_current:
              description: Current PCIe link width (lanes).
              type: int
        pci_devices:
          description:
            - NVIDIA display/3D PCI devices, each with C(address) (C(0000:07:00.0)), C(vendor_id) (C(0x10de)),
              C(device_id) (C(0x20b2)), C(class) (class and subclass, C(0x0302)) and C(driver) (the bound kernel driver
              from sysfs, C(null) from lspci).
            - In simulation they are derived from the file.
          type: list
          elements: dict
          sample: [{"address": "0000:07:00.0", "vendor_id": "0x10de", "device_id": "0x20b2", "class": "0x0302",
                    "driver": "nvidia"}]
        pci_source:
          description: Where C(pci_devices) comes from, C(sysfs), C(lspci) or C(simulated); C(null) when neither could be read.
          type: str
          sample: sysfs
        source:
          description:
            - Where the GPU inventory comes from, C(nvidia-smi -q -x), C(nvidia-smi -q) (text fallback) or
              C(simulated); C(null) when there is none.
          type: str
          sample: nvidia-smi -q -x
        nvidia_smi_path:
          description: The C(nvidia-smi) that was run (or the simulated file); C(null) when none was found.
          type: str
          sample: /usr/bin/nvidia-smi
        error:
          description:
            - Why there is no GPU inventory although one was expected, C(null) otherwise. Set when C(nvidia-smi) is
              missing on a host with an NVIDIA device, fails (its message and exit code), or prints output that cannot
              be parsed.
          type: str
          sample: "nvidia-smi -q -x failed (rc=18): Failed to initialize NVML: Driver/library version mismatch"
        simulated:
          description: Whether the data come from O(simulated_smi_xml).
          type: bool
          sample: false
        warnings:
          description: Warnings, also issued as module warnings (attached_gpus mismatch, text fallback, ...).
          type: list
          elements: str
          sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpuforge.cluster.plugins.module_utils.nvidia_smi import (
    SmiParseError,
    merge_compute_capability,
    merge_smi_list,
    parse_lspci,
    parse_query_csv,
    parse_smi_list,
    parse_smi_query_text,
    parse_smi_xml,
    pci_devices_from_gpus,
    smi_error_message,
    sysfs_pci_device,
    xml_unsupported,
)

SMI_OPT_DIRS = ["/usr/local/nvidia/bin"]


def read_text(path):
    """Text of a file, or None when it is absent or unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def scan_sysfs(path):
    """NVIDIA display devices under a sysfs PCI folder, or None when the folder is unusable."""
    try:
        entries = sorted(os.listdir(path))
    except OSError:
        return None
    devices = []
    readable = 0
    for name in entries:
        device_dir = os.path.join(path, name)
        vendor = read_text(os.path.join(device_dir, "vendor"))
        pci_class = read_text(os.path.join(device_dir, "class"))
        if vendor is None or pci_class is None:
            continue
        readable += 1
        try:
            driver = os.path.basename(os.readlink(os.path.join(device_dir, "driver")))
        except OSError:
            driver = None  # no driver bound (or not a link)
        entry = sysfs_pci_device(name, vendor, read_text(os.path.join(device_dir, "device")), pci_class, driver)
        if entry:
            devices.append(entry)
    if not readable:
        return None
    return devices


def scan_pci(module, sysfs_path, warnings):
    """(pci_devices, pci_source): sysfs first, `lspci -n -D` when sysfs is unusable."""
    devices = scan_sysfs(sysfs_path)
    if devices is not None:
        return devices, "sysfs"
    lspci = module.get_bin_path("lspci")
    if lspci:
        rc, out, err = module.run_command([lspci, "-n", "-D"])
        if rc == 0:
            return parse_lspci(out), "lspci"
        warnings.append("%s cannot be read and lspci -n -D failed (rc=%s): %s"
                        % (sysfs_path, rc, smi_error_message(out, err)))
    else:
        warnings.append("%s cannot be read and lspci is not installed: whether an NVIDIA device exists "
                        "is only known from nvidia-smi" % sysfs_path)
    return [], None


def find_smi(module, name):
    if os.path.isabs(name):
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return module.get_bin_path(name, opt_dirs=SMI_OPT_DIRS)


def base_facts():
    return {
        "present": False,
        "driver_loaded": False,
        "driver_version": None,
        "cuda_version": None,
        "attached_gpus": None,
        "gpu_count": 0,
        "gpus": [],
        "pci_devices": [],
        "pci_source": None,
        "source": None,
        "nvidia_smi_path": None,
        "error": None,
        "simulated": False,
        "warnings": [],
    }


def apply_inventory(facts, data, source):
    facts.update({
        "driver_loaded": True,
        "driver_version": data["driver_version"],
        "cuda_version": data["cuda_version"],
        "attached_gpus": data["attached_gpus"],
        "gpu_count": data["gpu_count"],
        "gpus": data["gpus"],
        "source": source,
    })
    facts["warnings"].extend(data["warnings"])


def simulated_facts(module, path):
    facts = base_facts()
    if not os.path.exists(path):
        module.fail_json(msg="simulated_smi_xml: %s does not exist on this host" % path)
    data = read_text(path)
    if data is None:
        module.fail_json(msg="simulated_smi_xml: %s cannot be read" % path)
    try:
        inventory = parse_smi_xml(data)
    except SmiParseError as exc:
        module.fail_json(msg="simulated_smi_xml: %s is not nvidia-smi -q -x output: %s" % (path, exc))
    apply_inventory(facts, inventory, "simulated")
    facts.update({
        "present": True,
        "simulated": True,
        "nvidia_smi_path": path,
        "pci_devices": pci_devices_from_gpus(inventory["gpus"]),
        "pci_source": "simulated",
    })
    return facts


def query_inventory(module, smi, facts):
    """Run nvidia-smi -q -x (or -q), fill facts; returns nothing, sets error on failure."""
    rc, out, err = module.run_command([smi, "-q", "-x"])
    if rc != 0:
        message = smi_error_message(out, err)
        if not xml_unsupported(message):
            facts["error"] = "nvidia-smi -q -x failed (rc=%s): %s" % (rc, message)
            return
        rc_text, text, err_text = module.run_command([smi, "-q"])
        if rc_text != 0:
            facts["error"] = "nvidia-smi -q -x failed (rc=%s): %s; nvidia-smi -q failed too (rc=%s): %s" % (
                rc, message, rc_text, smi_error_message(text, err_text))
            return
        try:
            inventory = parse_smi_query_text(text)
        except SmiParseError as exc:
            facts["error"] = "nvidia-smi -q -x failed (rc=%s): %s; nvidia-smi -q output cannot be parsed: %s" % (
                rc, message, exc)
            return
        facts["warnings"].append("nvidia-smi -q -x failed (%s); the GPU facts come from the text output of nvidia-smi -q"
                                 % message)
        apply_inventory(facts, inventory, "nvidia-smi -q")
        return
    try:
        inventory = parse_smi_xml(out)
    except SmiParseError as exc:
        facts["error"] = "nvidia-smi -q -x output cannot be parsed: %s" % exc
        return
    apply_inventory(facts, inventory, "nvidia-smi -q -x")


def add_details(module, smi, facts):
    """MIG profile names and UUIDs (nvidia-smi -L), compute capability (--query-gpu); best effort."""
    gpus = facts["gpus"]
    if any(gpu["mig_devices"] for gpu in gpus):
        rc, out, dummy = module.run_command([smi, "-L"])
        if rc == 0:
            merge_smi_list(gpus, parse_smi_list(out))
    if gpus:
        rc, out, dummy = module.run_command([smi, "--query-gpu=uuid,compute_cap", "--format=csv,noheader"])
        if rc == 0:
            merge_compute_capability(gpus, parse_query_csv(out, fields=["uuid", "compute_cap"]))


def collect(module):
    params = module.params
    if params["simulated_smi_xml"]:
        return simulated_facts(module, params["simulated_smi_xml"])

    facts = base_facts()
    facts["pci_devices"], facts["pci_source"] = scan_pci(module, params["sysfs_pci_path"], facts["warnings"])
    facts["present"] = bool(facts["pci_devices"])

    smi = find_smi(module, params["nvidia_smi"])
    if not smi:
        if facts["present"] or facts["pci_source"] is None:
            where = params["nvidia_smi"] if os.path.isabs(params["nvidia_smi"]) else \
                "%s in PATH or %s" % (params["nvidia_smi"], ", ".join(SMI_OPT_DIRS))
            facts["error"] = "nvidia-smi is not installed (not found: %s)" % where
        return facts

    facts["nvidia_smi_path"] = smi
    query_inventory(module, smi, facts)
    if facts["driver_loaded"]:
        add_details(module, smi, facts)
        if facts["gpus"] and not facts["present"]:
            if facts["pci_source"] is not None:
                facts["warnings"].append(
                    "nvidia-smi describes %d GPU(s) but %s shows no NVIDIA display/3D PCI device"
                    % (facts["gpu_count"], facts["pci_source"]))
            facts["present"] = True
    return facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            sysfs_pci_path=dict(type="path", default="/sys/bus/pci/devices"),
            simulated_smi_xml=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LC_ALL": "C"}
    facts = collect(module)
    for warning in facts["warnings"]:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"nvidia": facts})


if __name__ == "__main__":
    main()
