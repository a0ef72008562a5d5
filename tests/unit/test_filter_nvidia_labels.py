"""Unit tests for the gpuforge.cluster GPU node label filter (plugins/filter/nvidia_labels.py).

The facts dicts below are ansible_facts['nvidia'] as gpuforge.cluster.nvidia_gpu_facts
builds them from real captures (simulated lab hosts: the GPU inventory comes from the
capture, pci_devices from the lab container, which has none). A test parses the captures
in shared/fixtures/nvidia-smi and checks the dicts against them. The expected labels
follow GPU Feature Discovery (github.com/NVIDIA/k8s-device-plugin, internal/lm).
"""

import copy
import csv
import io
import re
import xml.etree.ElementTree as ET

import pytest


from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.filter import nvidia_labels as nl  # noqa: E402
from gpuforge.shared_inputs import nvidia_smi_fixtures  # noqa: E402

# Kubernetes label syntax, written out independently of the code under test.
VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


SIMULATED_XML = "/var/lib/gpuforge/simulated/nvidia-smi.xml"


def simulated_facts(driver, cuda, attached, gpus, warnings=()):
    """ansible_facts['nvidia'] of a lab host simulating a GPU host from a capture."""
    return {
        "present": True,
        "driver_loaded": True,
        "driver_version": driver,
        "cuda_version": cuda,
        "attached_gpus": attached,
        "gpu_count": len(gpus),
        "gpus": gpus,
        "pci_devices": [{"address": g["pci_address"], "class": None, "device_id": g["pci_device_id"],
                         "driver": "nvidia", "vendor_id": "0x10de"} for g in gpus],
        "pci_source": "simulated",
        "source": "simulated",
        "nvidia_smi_path": SIMULATED_XML,
        "error": None,
        "simulated": True,
        "warnings": list(warnings),
    }


def mig_device(index, gi, memory, bar1, sms, copy, decoders, jpg, profile=None, uuid=None):
    return {"index": index, "gpu_instance_id": gi, "compute_instance_id": 0, "memory_total_mib": memory,
            "bar1_memory_total_mib": bar1, "sm_count": sms,
            "attributes": {"multiprocessor_count": sms, "copy_engine_count": copy, "encoder_count": 0,
                           "decoder_count": decoders, "ofa_count": 0, "jpg_count": jpg},
            "profile": profile, "uuid": uuid}


# telegraf__tesla-t4.xml
T4 = simulated_facts("515.105.01", "11.7", 1, [{
    "index": 0, "uuid": "GPU-d37e67a5-91dd-3774-a5cb-99096249601a", "name": "Tesla T4",
    "pci_bus_id": "00000000:00:1E.0", "pci_address": "0000:00:1e.0", "memory_total_mib": 15360,
    "mig_capable": False, "mig_enabled": False, "mig_pending": None, "mig_devices": [],
    "product_brand": "NVIDIA", "product_architecture": "Turing", "compute_capability": None, "minor_number": 0,
    "serial": "0000000000000", "vbios_version": "90.04.84.00.06", "persistence_mode": False, "ecc_enabled": True,
    "ecc_pending": True, "compute_mode": "Default", "driver_model": None, "addressing_mode": None,
    "virtualization_mode": "Pass-Through", "gsp_firmware_version": "515.105.01", "board_part_number": None,
    "gpu_part_number": "900-2G183-0000-001", "module_id": 0, "pci_device_id": "0x1eb8",
    "pci_device_id_raw": "1EB810DE", "pci_class": None, "pcie_link_gen_max": 3, "pcie_link_gen_current": 3,
    "pcie_link_width_max": 16, "pcie_link_width_current": 8}])

# telegraf__a100-sxm4-v12.xml: one of four GPUs (trimmed capture), MIG enabled with four
# 1g.20gb devices. The XML carries no profile names (nvidia-smi -L has them).
A100 = simulated_facts("535.54.03", "12.2", 4, [{
    "index": 0, "uuid": "GPU-513536b6-7d19-9063-b049-1e69664bb298", "name": "NVIDIA A100-SXM4-80GB",
    "pci_bus_id": "00000000:01:00.0", "pci_address": "0000:01:00.0", "memory_total_mib": 81920,
    "mig_capable": True, "mig_enabled": True, "mig_pending": True,
    "mig_devices": [mig_device(i, gi, 19968, 32767, 14, 1, 1, 0) for i, gi in enumerate((3, 4, 5, 6))],
    "product_brand": "NVIDIA", "product_architecture": "Ampere", "compute_capability": None, "minor_number": 1,
    "serial": "1650522003820", "vbios_version": "92.00.36.00.02", "persistence_mode": False, "ecc_enabled": True,
    "ecc_pending": True, "compute_mode": "Default", "driver_model": None, "addressing_mode": "None",
    "virtualization_mode": "None", "gsp_firmware_version": "535.54.03", "board_part_number": "692-2G506-0212-002",
    "gpu_part_number": "20B2-895-A1", "module_id": 4, "pci_device_id": "0x20b2", "pci_device_id_raw": "20B210DE",
    "pci_class": None, "pcie_link_gen_max": 4, "pcie_link_gen_current": 4, "pcie_link_width_max": 16,
    "pcie_link_width_current": 16}],
    warnings=["nvidia-smi reports attached_gpus=4 but its output describes 1 GPU(s); gpu_count and gpus list the "
              "1 described"])


def h100_gpu(mig_enabled, devices):
    """The H100 80GB HBM3 of the nvidia_gpu_exporter captures (UUIDs and serial masked there)."""
    return {
        "index": 0, "uuid": "GPU-00000000-0000-0000-0000-000000000000", "name": "NVIDIA H100 80GB HBM3",
        "pci_bus_id": "00000000:00:09.0", "pci_address": "0000:00:09.0", "memory_total_mib": 81559,
        "mig_capable": True, "mig_enabled": mig_enabled, "mig_pending": mig_enabled, "mig_devices": devices,
        "product_brand": "NVIDIA", "product_architecture": "Hopper", "compute_capability": "9.0", "minor_number": 0,
        "serial": "0000000000000", "vbios_version": "96.00.A5.00.01", "persistence_mode": True, "ecc_enabled": True,
        "ecc_pending": True, "compute_mode": "Default", "driver_model": None, "addressing_mode": "None",
        "virtualization_mode": "Pass-Through", "gsp_firmware_version": "590.48.01",
        "board_part_number": "692-2G520-0200-000", "gpu_part_number": "2330-885-A1", "module_id": 7,
        "pci_device_id": "0x2330", "pci_device_id_raw": "233010DE", "pci_class": "0x0302", "pcie_link_gen_max": 5,
        "pcie_link_gen_current": 5, "pcie_link_width_max": 16, "pcie_link_width_current": 16}


def host_facts(gpu):
    """ansible_facts['nvidia'] on the real H100 host: nvidia-smi ran, sysfs shows the GPU."""
    return {
        "present": True, "driver_loaded": True, "driver_version": "590.48.01", "cuda_version": "13.1",
        "attached_gpus": 1, "gpu_count": 1, "gpus": [gpu],
        "pci_devices": [{"address": "0000:00:09.0", "vendor_id": "0x10de", "device_id": "0x2330",
                         "class": "0x0302", "driver": "nvidia"}],
        "pci_source": "sysfs", "source": "nvidia-smi -q -x", "nvidia_smi_path": "/usr/bin/nvidia-smi",
        "error": None, "simulated": False, "warnings": []}


# nvidia_gpu_exporter H100 MIG capture: 3g.40gb + 2g.20gb + 2x 1g.10gb; profile names and
# MIG UUIDs from its `nvidia-smi -L`, compute capability from --query-gpu=compute_cap.
H100_MIG = host_facts(h100_gpu(True, [
    mig_device(0, 2, 40448, 24739, 60, 3, 3, 3, "3g.40gb", "MIG-00000000-0000-0000-0000-000000000000"),
    mig_device(1, 3, 20096, 12369, 32, 2, 2, 2, "2g.20gb", "MIG-00000001-0000-0000-0000-000000000001"),
    mig_device(2, 9, 9984, 6184, 16, 1, 1, 1, "1g.10gb", "MIG-00000002-0000-0000-0000-000000000002"),
    mig_device(3, 10, 9984, 6184, 16, 1, 1, 1, "1g.10gb", "MIG-00000003-0000-0000-0000-000000000003"),
]))

# nvidia_gpu_exporter H100 capture without MIG.
H100 = host_facts(h100_gpu(False, []))


# --- the facts above are what the captures say -----------------------------------------------


def fixture(name):
    path = nvidia_smi_fixtures() / name
    assert path.is_file(), "missing shared fixture %s" % path
    return path


def capture_view(driver, cuda, gpus):
    """The parts of a capture the facts above were written from, in one shape for XML and text."""
    return {"driver_version": driver, "cuda_version": cuda, "gpus": gpus}


def facts_view(facts):
    keys = ("index", "uuid", "name", "pci_bus_id", "memory_total_mib", "mig_enabled", "product_architecture",
            "compute_capability")
    gpus = []
    for gpu in facts["gpus"]:
        item = {key: gpu[key] for key in keys}
        item["mig_devices"] = [{"gpu_instance_id": d["gpu_instance_id"], "compute_instance_id": d["compute_instance_id"],
                                "memory_total_mib": d["memory_total_mib"], "sm_count": d["sm_count"],
                                "profile": d["profile"]} for d in gpu["mig_devices"]]
        gpus.append(item)
    return capture_view(facts["driver_version"], facts["cuda_version"], gpus)


def facts_from_xml(path):
    """The GPU inventory of a `nvidia-smi -q -x` capture, in the facts schema (the keys the labels use)."""
    root = ET.parse(path).getroot()
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        total = gpu.findtext("fb_memory_usage/total")
        devices = []
        mig_devices = gpu.find("mig_devices")
        for mig in (mig_devices.findall("mig_device") if mig_devices is not None else []):
            devices.append({
                "gpu_instance_id": int(mig.findtext("gpu_instance_id")),
                "compute_instance_id": int(mig.findtext("compute_instance_id")),
                "memory_total_mib": int(mig.findtext("fb_memory_usage/total").split()[0]),
                "sm_count": int(mig.findtext("device_attributes/shared/multiprocessor_count")),
                "profile": None,
            })
        gpus.append({
            "index": index,
            "uuid": gpu.findtext("uuid"),
            "name": gpu.findtext("product_name"),
            "pci_bus_id": gpu.findtext("pci/pci_bus_id") or gpu.get("id"),
            "memory_total_mib": int(total.split()[0]) if total else None,
            "mig_enabled": gpu.findtext("mig_mode/current_mig") == "Enabled",
            "product_architecture": gpu.findtext("product_architecture"),
            "compute_capability": None,  # not in nvidia-smi's XML
            "mig_devices": devices,
        })
    return capture_view(root.findtext("driver_version"), root.findtext("cuda_version"), gpus)


def facts_from_bundle(path):
    """The same from an nvidia_gpu_exporter bundle (`nvidia-smi -q` and `nvidia-smi -L` sections)."""
    text = path.read_text(encoding="utf-8")

    def section(command):
        return text.split("# $ %s\n" % command, 1)[1].split("\n", 1)[1].split("\n####", 1)[0]

    query = section("nvidia-smi -q")  # the first one (a bundle may hold one per load phase)
    profiles = re.findall(r"^\s+MIG (\S+)\s+Device\s+\d+:", section("nvidia-smi -L"), re.M)
    devices = []
    for number, block in enumerate(query.split("    MIG Device\n")[1:]):
        devices.append({
            "gpu_instance_id": int(re.search(r"GPU Instance ID\s+:\s+(\d+)", block).group(1)),
            "compute_instance_id": int(re.search(r"Compute Instance ID\s+:\s+(\d+)", block).group(1)),
            "memory_total_mib": int(re.search(r"Shared FB Memory Usage\s+Total\s+:\s+(\d+) MiB", block).group(1)),
            "sm_count": int(re.search(r"Multiprocessor count\s+:\s+(\d+)", block).group(1)),
            "profile": profiles[number],
        })
    gpu_part = query.split("    MIG Device\n")[-1]
    query_gpu = text.split("# $ nvidia-smi --query-gpu=", 1)[1].split("\n", 2)[2].split("\n####", 1)[0].strip()
    rows = list(csv.reader(io.StringIO(query_gpu)))
    compute_cap = rows[1][[h.strip() for h in rows[0]].index("compute_cap")].strip()
    return capture_view(
        re.search(r"Driver Version\s+:\s+(\S+)", query).group(1),
        re.search(r"CUDA Version\s+:\s+(\S+)", query).group(1),
        [{
            "index": 0,
            "uuid": re.search(r"GPU UUID\s+:\s+(\S+)", query).group(1),
            "name": re.search(r"Product Name\s+:\s+(.+)", query).group(1).strip(),
            "pci_bus_id": re.search(r"Bus Id\s+:\s+(\S+)", query).group(1),
            "memory_total_mib": int(re.search(r"    FB Memory Usage\s+Total\s+:\s+(\d+) MiB", gpu_part).group(1)),
            "mig_enabled": re.search(r"MIG Mode\s+Current\s+:\s+(\S+)", query).group(1) == "Enabled",
            "product_architecture": re.search(r"Product Architecture\s+:\s+(.+)", query).group(1).strip(),
            "compute_capability": compute_cap,
            "mig_devices": devices,
        }])


def capture_facts(path):
    """Facts for gpu_labels from any capture (the keys it reads; other keys are optional)."""
    view = facts_from_xml(path) if path.suffix == ".xml" else facts_from_bundle(path)
    facts = {"present": True, "driver_version": view["driver_version"], "cuda_version": view["cuda_version"],
             "gpu_count": len(view["gpus"]), "gpus": view["gpus"]}
    if facts["cuda_version"] == "Not Found":
        facts["cuda_version"] = None  # as nvidia_gpu_facts reports it
    return facts


@pytest.mark.parametrize("facts, capture", [
    (T4, "telegraf__tesla-t4.xml"),
    (A100, "telegraf__a100-sxm4-v12.xml"),
    (H100_MIG, "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-mig__590.48.01.txt"),
    (H100, "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt"),
])
def test_facts_are_what_the_captures_say(facts, capture):
    path = fixture(capture)
    parsed = facts_from_xml(path) if capture.endswith(".xml") else facts_from_bundle(path)
    assert parsed == facts_view(facts)


# --- labels -------------------------------------------------------------------------------------


def assert_valid(labels):
    for key, value in labels.items():
        prefix, name = key.split("/", 1)
        assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", prefix), key
        assert len(name) <= 63 and NAME_RE.match(name), key
        assert isinstance(value, str) and len(value) <= 63 and VALUE_RE.match(value), (key, value)


T4_LABELS = {
    "nvidia.com/cuda.driver-version.full": "515.105.01",
    "nvidia.com/cuda.driver-version.major": "515",
    "nvidia.com/cuda.driver-version.minor": "105",
    "nvidia.com/cuda.driver-version.revision": "01",
    "nvidia.com/cuda.driver.major": "515",
    "nvidia.com/cuda.driver.minor": "105",
    "nvidia.com/cuda.driver.rev": "01",
    "nvidia.com/cuda.runtime-version.full": "11.7",
    "nvidia.com/cuda.runtime-version.major": "11",
    "nvidia.com/cuda.runtime-version.minor": "7",
    "nvidia.com/cuda.runtime.major": "11",
    "nvidia.com/cuda.runtime.minor": "7",
    "nvidia.com/gpu.compute.major": "7",
    "nvidia.com/gpu.compute.minor": "5",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.family": "turing",
    "nvidia.com/gpu.memory": "15360",
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "Tesla-T4",
    "nvidia.com/gpu.replicas": "1",
    "nvidia.com/gpu.sharing-strategy": "none",
    "nvidia.com/mig.capable": "false",
    "nvidia.com/mps.capable": "false",
}


def test_t4_labels():
    labels = nl.gpu_labels(T4)
    assert labels == T4_LABELS
    assert list(labels) == sorted(labels)
    assert_valid(labels)


def test_t4_single_strategy_without_mig_adds_only_the_strategy():
    assert nl.gpu_labels(T4, "single") == dict(T4_LABELS, **{"nvidia.com/mig.strategy": "single"})
    assert nl.gpu_labels(T4, "mixed") == dict(T4_LABELS, **{"nvidia.com/mig.strategy": "mixed"})


A100_FULL = {
    "nvidia.com/cuda.driver-version.full": "535.54.03",
    "nvidia.com/cuda.driver-version.major": "535",
    "nvidia.com/cuda.driver-version.minor": "54",
    "nvidia.com/cuda.driver-version.revision": "03",
    "nvidia.com/cuda.driver.major": "535",
    "nvidia.com/cuda.driver.minor": "54",
    "nvidia.com/cuda.driver.rev": "03",
    "nvidia.com/cuda.runtime-version.full": "12.2",
    "nvidia.com/cuda.runtime-version.major": "12",
    "nvidia.com/cuda.runtime-version.minor": "2",
    "nvidia.com/cuda.runtime.major": "12",
    "nvidia.com/cuda.runtime.minor": "2",
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.memory": "81920",
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    # GFD labels MIG-enabled GPUs without sharing: replicas 0.
    "nvidia.com/gpu.replicas": "0",
    "nvidia.com/gpu.sharing-strategy": "none",
    "nvidia.com/mig.capable": "true",
    "nvidia.com/mps.capable": "false",
}


def test_a100_labels_strategy_none():
    labels = nl.gpu_labels(A100)
    assert labels == A100_FULL
    assert_valid(labels)


def test_a100_labels_strategy_single():
    labels = nl.gpu_labels(A100, "single")
    assert labels == dict(A100_FULL, **{
        "nvidia.com/mig.strategy": "single",
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-MIG-1g.20gb",
        "nvidia.com/gpu.count": "4",
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.memory": "19968",
        "nvidia.com/gpu.multiprocessors": "14",
        "nvidia.com/gpu.slices.gi": "1",
        "nvidia.com/gpu.slices.ci": "1",
        "nvidia.com/gpu.engines.copy": "1",
        "nvidia.com/gpu.engines.decoder": "1",
        "nvidia.com/gpu.engines.encoder": "0",
        "nvidia.com/gpu.engines.jpeg": "0",
        "nvidia.com/gpu.engines.ofa": "0",
    })
    assert_valid(labels)


def test_a100_labels_strategy_mixed():
    labels = nl.gpu_labels(A100, "mixed")
    assert labels == dict(A100_FULL, **{
        "nvidia.com/mig.strategy": "mixed",
        "nvidia.com/mig-1g.20gb.count": "4",
        "nvidia.com/mig-1g.20gb.product": "NVIDIA-A100-SXM4-80GB-MIG-1g.20gb",
        "nvidia.com/mig-1g.20gb.replicas": "1",
        "nvidia.com/mig-1g.20gb.sharing-strategy": "none",
        "nvidia.com/mig-1g.20gb.memory": "19968",
        "nvidia.com/mig-1g.20gb.multiprocessors": "14",
        "nvidia.com/mig-1g.20gb.slices.gi": "1",
        "nvidia.com/mig-1g.20gb.slices.ci": "1",
        "nvidia.com/mig-1g.20gb.engines.copy": "1",
        "nvidia.com/mig-1g.20gb.engines.decoder": "1",
        "nvidia.com/mig-1g.20gb.engines.encoder": "0",
        "nvidia.com/mig-1g.20gb.engines.jpeg": "0",
        "nvidia.com/mig-1g.20gb.engines.ofa": "0",
    })
    assert_valid(labels)


def test_h100_mig_capture_mixed():
    labels = nl.gpu_labels(H100_MIG, "mixed")
    mig = {k: v for k, v in labels.items() if k.startswith("nvidia.com/mig-")}
    assert {k: v for k, v in mig.items() if k.endswith(".count")} == {
        "nvidia.com/mig-3g.40gb.count": "1", "nvidia.com/mig-2g.20gb.count": "1", "nvidia.com/mig-1g.10gb.count": "2"}
    assert mig["nvidia.com/mig-3g.40gb.product"] == "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb"
    assert mig["nvidia.com/mig-3g.40gb.memory"] == "40448"
    assert mig["nvidia.com/mig-2g.20gb.memory"] == "20096"
    assert mig["nvidia.com/mig-1g.10gb.memory"] == "9984"
    assert mig["nvidia.com/mig-2g.20gb.slices.gi"] == "2"
    assert mig["nvidia.com/mig-3g.40gb.multiprocessors"] == "60"
    assert {k.split(".", 3)[-1]: v for k, v in mig.items() if k.startswith("nvidia.com/mig-3g.40gb.engines.")} == {
        "engines.copy": "3", "engines.decoder": "3", "engines.encoder": "0", "engines.jpeg": "3", "engines.ofa": "0"}
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.memory"] == "81559"
    assert labels["nvidia.com/gpu.family"] == "hopper"
    assert (labels["nvidia.com/gpu.compute.major"], labels["nvidia.com/gpu.compute.minor"]) == ("9", "0")
    assert labels["nvidia.com/cuda.driver-version.full"] == "590.48.01"
    assert labels["nvidia.com/cuda.runtime-version.full"] == "13.1"
    assert_valid(labels)


def test_h100_mig_capture_single_is_invalid_like_gfd(monkeypatch):
    warnings = []
    monkeypatch.setattr(nl, "_warn", warnings.append)
    labels = nl.gpu_labels(H100_MIG, "single")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-INVALID"
    assert (labels["nvidia.com/gpu.count"], labels["nvidia.com/gpu.replicas"], labels["nvidia.com/gpu.memory"]) == (
        "0", "0", "0")
    assert warnings == ["gpu_labels: invalid configuration for mig-strategy=single: more than one MIG device type "
                        "present on node (1g.10gb, 2g.20gb, 3g.40gb)"]
    assert_valid(labels)


def test_h100_without_mig():
    labels = nl.gpu_labels(H100, "mixed")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.replicas"] == "1"
    assert labels["nvidia.com/mig.capable"] == "true"
    assert not [k for k in labels if k.startswith("nvidia.com/mig-")]


def test_mig_profiles_from_memory_and_sm_count_without_names():
    # In simulation (and with drivers whose `nvidia-smi -L` fails) the facts carry no profile names.
    facts = copy.deepcopy(H100_MIG)
    for device in facts["gpus"][0]["mig_devices"]:
        device["profile"] = None
    assert nl.gpu_labels(facts, "mixed") == nl.gpu_labels(H100_MIG, "mixed")


def test_mig_profile_needs_the_sm_count_when_memory_is_shared():
    facts = copy.deepcopy(H100_MIG)
    for device in facts["gpus"][0]["mig_devices"]:
        device["profile"] = None
        device["sm_count"] = None
        del device["attributes"]["multiprocessor_count"]
    # 40448 MiB fits 3g.40gb and 4g.40gb alike.
    with pytest.raises(AnsibleFilterError, match=re.escape(
            "cannot tell the MIG profile of ansible_facts['nvidia']['gpus'][0]['mig_devices'][0] (GPU 0, "
            "NVIDIA H100 80GB HBM3, GPU instance 2): 40448 MiB fits 3g.40gb or 4g.40gb; the SM count")):
        nl.gpu_labels(facts, "mixed")
    # Strategy none does not look at MIG devices.
    assert nl.gpu_labels(facts)["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    for device, profile in zip(facts["gpus"][0]["mig_devices"], ["3g.40gb", "MIG 2g.20gb", "1g.10gb", "1g.10gb"]):
        device["profile"] = profile
    assert nl.gpu_labels(facts, "mixed")["nvidia.com/mig-2g.20gb.count"] == "1"


def test_media_extension_profile_resource_name():
    facts = copy.deepcopy(H100_MIG)
    device = facts["gpus"][0]["mig_devices"][2]
    device["attributes"]["ofa_count"] = 1
    device["profile"] = "1g.10gb+me"
    labels = nl.gpu_labels(facts, "mixed")
    assert labels["nvidia.com/mig-1g.10gb.me.count"] == "1"
    assert labels["nvidia.com/mig-1g.10gb.me.engines.ofa"] == "1"
    # GFD's sanitise() drops the '+' from the product.
    assert labels["nvidia.com/mig-1g.10gb.me.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gbme"
    assert labels["nvidia.com/mig-1g.10gb.count"] == "1"
    assert_valid(labels)
    # Without the name, the OFA tells the +me profile apart.
    device["profile"] = None
    assert nl.gpu_labels(facts, "mixed") == labels


def test_compute_capability_from_facts_wins():
    facts = copy.deepcopy(T4)
    facts["gpus"][0]["compute_capability"] = "7.5"
    assert nl.gpu_labels(facts) == T4_LABELS
    facts["gpus"][0]["name"] = "Graphics Device"  # the GTX 1660 Ti capture's name
    labels = nl.gpu_labels(facts)
    assert (labels["nvidia.com/gpu.family"], labels["nvidia.com/gpu.compute.major"]) == ("turing", "7")


@pytest.mark.parametrize("capability, family", [
    ("3.7", "kepler"), ("5.2", "maxwell"), ("6.1", "pascal"), ("7.0", "volta"), ("7.5", "turing"), ("8.0", "ampere"),
    ("8.6", "ampere"), ("8.9", "ada-lovelace"), ("9.0", "hopper"), ("10.0", "blackwell"), ("12.0", "blackwell"),
    ("4.0", "undefined"),
])
def test_family_follows_gfd(capability, family):
    facts = copy.deepcopy(T4)
    facts["gpus"][0]["compute_capability"] = capability
    assert nl.gpu_labels(facts)["nvidia.com/gpu.family"] == family


def test_single_strategy_invalid_cases(monkeypatch):
    warnings = []
    monkeypatch.setattr(nl, "_warn", warnings.append)
    empty = copy.deepcopy(A100)
    empty["gpus"][0]["mig_devices"] = []
    labels = nl.gpu_labels(empty, "single")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB-MIG-INVALID"
    assert "at least one MIG device is enabled but empty" in warnings[-1]
    # Mixed: mig-enabled GPUs without devices are ignored.
    assert not [k for k in nl.gpu_labels(empty, "mixed") if k.startswith("nvidia.com/mig-")]
    two = copy.deepcopy(A100)
    second = copy.deepcopy(two["gpus"][0])
    second.update(index=1, mig_enabled=False, mig_devices=[])
    two["gpus"].append(second)
    two["gpu_count"] = 2
    labels = nl.gpu_labels(two, "single")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB-MIG-INVALID"
    assert "devices with MIG enabled and disable detected" in warnings[-1]
    labels = nl.gpu_labels(two)
    assert (labels["nvidia.com/gpu.count"], labels["nvidia.com/gpu.replicas"]) == ("2", "1")


def test_node_without_gpus_gets_no_labels():
    assert nl.gpu_labels({"present": False, "driver_loaded": False, "driver_version": None, "cuda_version": None,
                          "gpu_count": 0, "gpus": [], "error": None, "simulated": False, "pci_devices": []}) == {}
    assert nl.gpu_labels(dict(T4, gpus=[], gpu_count=0)) == {}
    assert nl.gpu_labels(dict(T4, present=False)) == {}


def test_mixed_models_fail_or_label_the_first(monkeypatch):
    facts = copy.deepcopy(T4)
    facts["gpus"].append(dict(A100["gpus"][0], index=1))
    facts["gpu_count"] = 2
    with pytest.raises(AnsibleFilterError, match=re.escape(
            "gpu_labels: the node has different GPU models (Tesla T4, NVIDIA A100-SXM4-80GB)")):
        nl.gpu_labels(facts)
    warnings = []
    monkeypatch.setattr(nl, "_warn", warnings.append)
    labels = nl.gpu_labels(facts, on_mixed="first")
    assert labels["nvidia.com/gpu.product"] == "Tesla-T4"
    assert labels["nvidia.com/gpu.count"] == "1"
    # Like GFD, mig.capable is true when any GPU of the node is.
    assert labels["nvidia.com/mig.capable"] == "true"
    assert warnings and "labelling Tesla T4" in warnings[0]


def test_prefix_and_machine():
    labels = nl.gpu_labels(T4, prefix="gpus.example.com", machine="PowerEdge R750xa (Gen 2) ")
    assert set(k.split("/")[0] for k in labels) == {"gpus.example.com"}
    assert labels["gpus.example.com/gpu.machine"] == "PowerEdge-R750xa-Gen-2"
    assert nl.gpu_labels(T4, machine="")["nvidia.com/gpu.machine"] == "unknown"


@pytest.mark.parametrize("name, product", [
    ("NVIDIA GeForce RTX 3080 (Laptop GPU)", "NVIDIA-GeForce-RTX-3080-Laptop-GPU"),
    ("  NVIDIA   A10G ", "NVIDIA-A10G"),
    ("Graphics Device", "Graphics-Device"),
    ("-NVIDIA Böard_", "NVIDIA-Bard"),
    ("NVIDIA " + "X" * 80, "NVIDIA-" + "X" * 56),
    ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "NVIDIA-RTX-PRO-6000-Blackwell-Max-Q-Workstation-Edition"),
])
def test_product_values_are_valid_label_values(name, product):
    facts = copy.deepcopy(T4)
    facts["gpus"][0]["name"] = name
    labels = nl.gpu_labels(facts)
    assert labels["nvidia.com/gpu.product"] == product
    assert_valid(labels)


def test_long_mig_product_stays_within_63_characters():
    labels = nl.gpu_labels(A100, "mixed")
    facts = copy.deepcopy(A100)
    facts["gpus"][0]["name"] = "NVIDIA A100-SXM4-80GB Very Long Board Name For Testing Labels"
    labels = nl.gpu_labels(facts, "mixed")
    assert len(labels["nvidia.com/mig-1g.20gb.product"]) <= 63
    assert_valid(labels)


def all_captures():
    directory = nvidia_smi_fixtures()
    paths = sorted(directory.glob("*.xml")) + sorted(directory.glob("nvidia_gpu_exporter__*.txt"))
    assert len(paths) >= 18
    return paths


@pytest.mark.parametrize("path", all_captures(), ids=lambda p: p.name)
@pytest.mark.parametrize("strategy", ["none", "mixed"])
def test_every_capture_gives_valid_labels(path, strategy):
    facts = capture_facts(path)
    labels = nl.gpu_labels(facts, strategy)
    assert_valid(labels)
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/gpu.count"] == str(len(facts["gpus"]))
    if facts["cuda_version"] and re.match(r"^\d+\.\d+$", facts["cuda_version"]):
        assert labels["nvidia.com/cuda.runtime-version.full"] == facts["cuda_version"]
    else:
        assert "nvidia.com/cuda.runtime.major" not in labels  # K80 capture: "Not Found"


def test_capture_quirks():
    k80 = nl.gpu_labels(capture_facts(fixture("pai__nvidia_smi_out_of_order.xml")))
    assert (k80["nvidia.com/gpu.product"], k80["nvidia.com/gpu.count"], k80["nvidia.com/gpu.family"]) == (
        "Tesla-K80", "4", "kepler")
    # 430.26 has no third component: GFD writes an empty revision.
    assert (k80["nvidia.com/cuda.driver.minor"], k80["nvidia.com/cuda.driver.rev"]) == ("26", "")
    assert "nvidia.com/cuda.runtime.major" not in k80  # CUDA Version "Not Found"
    gtx1660 = nl.gpu_labels(capture_facts(fixture("telegraf__gtx-1660-ti.xml")))
    assert gtx1660["nvidia.com/gpu.product"] == "Graphics-Device"
    assert "nvidia.com/gpu.family" not in gtx1660  # unknown name: no architecture labels
    gt730 = nl.gpu_labels(capture_facts(fixture("pai__nvidia_smi_outdated_gpu.xml")))
    assert "nvidia.com/gpu.memory" not in gt730  # the trimmed capture has no fb_memory_usage
    gtx1070ti = nl.gpu_labels(capture_facts(fixture("telegraf__gtx-1070-ti.xml")))
    assert not [k for k in gtx1070ti if k.startswith("nvidia.com/cuda.")]  # no driver element
    ada = nl.gpu_labels(capture_facts(fixture("telegraf__rtx-4000-sff-ada-v13.xml")))
    assert (ada["nvidia.com/gpu.product"], ada["nvidia.com/gpu.family"]) == (
        "NVIDIA-RTX-4000-SFF-Ada-Generation", "ada-lovelace")
    assert (ada["nvidia.com/cuda.driver.rev"], ada["nvidia.com/cuda.driver-version.revision"]) == ("", "")


# --- bad input ----------------------------------------------------------------------------------


def with_gpu(**changes):
    facts = copy.deepcopy(T4)
    facts["gpus"][0].update(changes)
    return facts


@pytest.mark.parametrize("facts, kwargs, message", [
    (None, {}, "the input must be ansible_facts['nvidia'] (a dict), got NoneType"),
    ([T4], {}, "the input must be ansible_facts['nvidia'] (a dict), got list"),
    ("Tesla T4", {}, "(a dict), got str"),
    (dict(T4, present="yes"), {}, "ansible_facts['nvidia']['present'] must be true or false, got 'yes'"),
    (dict(T4, gpus="Tesla T4"), {}, "ansible_facts['nvidia']['gpus'] must be a list, got str"),
    (dict(T4, gpu_count=2), {}, "ansible_facts['nvidia']['gpu_count'] is 2 but ansible_facts['nvidia']['gpus'] lists 1"),
    (dict(T4, gpu_count=-1), {}, "ansible_facts['nvidia']['gpu_count'] must not be negative, got -1"),
    (dict(T4, gpu_count="1"), {}, "ansible_facts['nvidia']['gpu_count'] must be an integer"),
    (dict(T4, gpus=[None]), {}, "ansible_facts['nvidia']['gpus'][0] must be a dict, got NoneType"),
    (with_gpu(name=None), {}, "ansible_facts['nvidia']['gpus'][0]['name'] must be the GPU product name, got None"),
    (with_gpu(name=42), {}, "['name'] must be the GPU product name, got 42"),
    (with_gpu(name="  "), {}, "['name'] must be the GPU product name"),
    (with_gpu(memory_total_mib=-1), {}, "['memory_total_mib'] must not be negative, got -1"),
    (with_gpu(memory_total_mib="15360"), {}, "['memory_total_mib'] must be an integer, got '15360'"),
    (with_gpu(memory_total_mib=True), {}, "['memory_total_mib'] must be an integer"),
    (with_gpu(mig_enabled="yes"), {}, "['mig_enabled'] must be true or false, got 'yes'"),
    (with_gpu(mig_devices="1g.10gb"), {}, "['mig_devices'] must be a list, got str"),
    (with_gpu(compute_capability="banana"), {}, "['compute_capability'] must be like '8.0', got 'banana'"),
    (with_gpu(compute_capability=7.5), {}, "['compute_capability'] must be like '8.0', got 7.5"),
    (with_gpu(mig_capable="no"), {}, "['mig_capable'] must be true or false, got 'no'"),
    (with_gpu(mig_devices=[None]), {}, "['mig_devices'][0] must be a dict"),
    (dict(T4, driver_version="banana"), {},
     "ansible_facts['nvidia']['driver_version'] 'banana' does not match the format X.Y[.Z]"),
    (dict(T4, driver_version=515), {}, "['driver_version'] '515' does not match"),
    (dict(T4, cuda_version="banana"), {}, "ansible_facts['nvidia']['cuda_version'] 'banana' is not a CUDA version"),
    (dict(T4, cuda_version=11.7), {}, "['cuda_version'] '11.7' is not a CUDA version"),
    (T4, {"strategy": "weird"}, "strategy must be one of none, single, mixed, got 'weird'"),
    (T4, {"strategy": None}, "strategy must be one of"),
    (T4, {"prefix": "Not A Domain"}, "prefix must be a DNS subdomain such as nvidia.com, got 'Not A Domain'"),
    (T4, {"prefix": None}, "prefix must be a DNS subdomain"),
    (T4, {"machine": 42}, "machine must be a string"),
    (T4, {"on_mixed": "pick"}, "on_mixed must be one of error, first, got 'pick'"),
])
def test_bad_input(facts, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        nl.gpu_labels(facts, **kwargs)


@pytest.mark.parametrize("device, message", [
    ({"gpu_instance_id": 3}, "['mig_devices'][0]['memory_total_mib'] must be an integer, got None"),
    ({"memory_total_mib": -5}, "['mig_devices'][0]['memory_total_mib'] must not be negative"),
    ({"memory_total_mib": 19968, "sm_count": "14"}, "['mig_devices'][0]['sm_count'] must be an integer, got '14'"),
    ({"memory_total_mib": 19968, "attributes": {"multiprocessor_count": -14}}, "['sm_count'] must not be negative"),
    ({"memory_total_mib": 123456, "sm_count": 14}, "123456 MiB matches no A100 80GB"),
    ({"profile": "banana"}, "['mig_devices'][0]['profile']: 'banana' is not a MIG profile name"),
    ({"profile": "1g.18gb"}, "['mig_devices'][0]['profile'] '1g.18gb' is not a MIG profile of NVIDIA A100-SXM4-80GB"),
])
def test_bad_mig_devices(device, message):
    facts = copy.deepcopy(A100)
    facts["gpus"][0]["mig_devices"] = [device]
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        nl.gpu_labels(facts, "mixed")


def test_mig_enabled_gpu_without_table_fails_for_mig_strategies():
    facts = copy.deepcopy(A100)
    facts["gpus"][0]["name"] = "NVIDIA GB200"
    with pytest.raises(AnsibleFilterError, match="GPU 0: GPU 'NVIDIA GB200' supports MIG but its profile table is not"):
        nl.gpu_labels(facts, "mixed")
    assert nl.gpu_labels(facts)["nvidia.com/gpu.product"] == "NVIDIA-GB200"


def test_filters_are_registered():
    assert set(nl.FilterModule().filters()) == {"gpu_labels", "gpu_resources"}


# --- gpu_resources: what the device plugin advertises ---------------------------------------

@pytest.mark.parametrize("facts, strategy, expected", [
    (T4, "none", {"nvidia.com/gpu": 1}),
    (T4, "single", {"nvidia.com/gpu": 1}),
    (T4, "mixed", {"nvidia.com/gpu": 1}),
    # the A100 capture: MIG enabled, four 1g.20gb devices
    (A100, "none", {"nvidia.com/gpu": 1}),
    (A100, "single", {"nvidia.com/gpu": 4}),
    (A100, "mixed", {"nvidia.com/mig-1g.20gb": 4}),
    # the H100 bundle with MIG: 3g.40gb + 2g.20gb + 2x 1g.10gb; single refuses mixed profiles
    (H100_MIG, "single", {"nvidia.com/gpu": 0}),
    (H100_MIG, "mixed", {"nvidia.com/mig-1g.10gb": 2, "nvidia.com/mig-2g.20gb": 1, "nvidia.com/mig-3g.40gb": 1}),
    (H100, "mixed", {"nvidia.com/gpu": 1}),
])
def test_gpu_resources(facts, strategy, expected):
    assert nl.gpu_resources(facts, strategy) == expected


def test_gpu_resources_counts_every_gpu_and_agrees_with_the_labels():
    facts = copy.deepcopy(A100)
    facts["gpus"] = [dict(copy.deepcopy(facts["gpus"][0]), index=i) for i in range(4)]
    facts["gpu_count"] = 4
    assert nl.gpu_resources(facts, "mixed") == {"nvidia.com/mig-1g.20gb": 16}
    assert nl.gpu_labels(facts, "mixed")["nvidia.com/mig-1g.20gb.count"] == "16"
    assert nl.gpu_resources(facts, "single") == {"nvidia.com/gpu": 16}
    assert nl.gpu_labels(facts, "single")["nvidia.com/gpu.count"] == "16"
    # one GPU with MIG disabled: mixed exposes it whole, single refuses the mix
    facts["gpus"][3]["mig_enabled"] = False
    facts["gpus"][3]["mig_devices"] = []
    assert nl.gpu_resources(facts, "mixed") == {"nvidia.com/gpu": 1, "nvidia.com/mig-1g.20gb": 12}
    assert nl.gpu_resources(facts, "single") == {"nvidia.com/gpu": 0}


def test_gpu_resources_without_gpus_and_prefix():
    assert nl.gpu_resources({"present": False, "gpu_count": 0, "gpus": []}) == {}
    assert nl.gpu_resources(T4, "none", "example.com") == {"example.com/gpu": 1}


@pytest.mark.parametrize("args, message", [
    ((T4, "time-slicing"), "gpu_resources: strategy must be one of none, single, mixed"),
    ((T4, "none", "Not A Domain"), "gpu_resources: prefix must be a DNS subdomain"),
    (({"present": True, "gpu_count": 1, "gpus": [{"name": ""}]},), "gpu_resources: .*'name'.* must be the GPU"),
    (("nvidia",), r"gpu_resources: the input must be ansible_facts\['nvidia'\]"),
])
def test_gpu_resources_bad_input(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        nl.gpu_resources(*args)
