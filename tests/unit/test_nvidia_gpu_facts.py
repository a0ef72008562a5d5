"""Unit tests for gpuforge.cluster.nvidia_gpu_facts and its parsers (module_utils/nvidia_smi.py).

The inputs are the real nvidia-smi captures in the shared fixtures folder (found with
gpuforge.shared_inputs.nvidia_smi_fixtures; the tests fail when it is missing). Every file there is
parsed and checked against the values written in EXPECTED_XML / EXPECTED_BUNDLES, which were
read from the files themselves; a file added to the folder without expectations fails
test_every_fixture_has_expectations.

Failure outputs (driver not loaded, library mismatch, no devices) are the messages and exit
codes nvidia-smi prints (see nvidia-smi(1), RETURN VALUE). sysfs trees are built in tmp_path
with the vendor/device/class values real devices have.
"""

import json
import os
from unittest import mock

import pytest


from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils import nvidia_smi as smi  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.modules import nvidia_gpu_facts as module  # noqa: E402
from gpuforge.shared_inputs import capture_output, capture_sections as bundle_sections  # noqa: E402


# --- what the captures hold (read from the files) -----------------------------------

K80_UUIDS = [
    "GPU-c3b26f7a-8dcb-619c-fa1b-8029265a4db0",
    "GPU-b01b80eb-0f18-1df0-cf88-0725bd90f1e1",
    "GPU-30bc2701-3bc2-5f35-0ebd-9867a077e138",
    "GPU-3341aba2-f01d-2c1f-7dd4-e389779faec2",
]


def xml_case(driver, cuda, attached, names, uuids, bus_ids, memory, **extra):
    case = {
        "driver_version": driver, "cuda_version": cuda, "attached_gpus": attached,
        "names": names, "uuids": uuids, "pci_bus_ids": bus_ids, "memory_total_mib": memory,
        "mig_enabled": [False] * len(names), "mig_capable": [False] * len(names),
        "architecture": None, "warnings": 0 if attached in (None, len(names)) else 1,
    }
    case.update(extra)
    return case


EXPECTED_XML = {
    "pai__nvidia_smi_out_of_order.xml": xml_case(
        "430.26", None, 4, ["Tesla K80"] * 4, K80_UUIDS,
        ["00001580:00:00.0", "00002DF7:00:00.0", "00004968:00:00.0", "0000F8D6:00:00.0"], [11441] * 4,
        minor_numbers=[1, 2, 3, 0], pci_addresses=["1580:00:00.0", "2df7:00:00.0", "4968:00:00.0", "f8d6:00:00.0"]),
    "pai__nvidia_smi_outdated_gpu.xml": xml_case(
        "384.111", None, 1, ["GeForce GT 730"], ["GPU-09cb2925-9d01-5ca4-810b-6cdebe86b71a"],
        ["00000000:01:00.0"], [None], minor_numbers=[0]),
    "pai__nvidia_smi_retired_pages.xml": xml_case(
        "410.104", "10.0", 16, ["Tesla V100-SXM3-32GB"], ["GPU-ef23ffa6-c9fd-93d5-aeb8-612c087255ff"],
        ["00000000:34:00.0"], [32480], ecc_enabled=[True], pci_device_ids=["0x1db8"]),
    "pai__nvidia_smi_sample.xml": xml_case(
        "384.66", None, 6, ["GeForce GTX 1070"] * 2,
        ["GPU-e511a7b2-f9d5-ba47-9b98-853732ca6c1b", "GPU-28daffaf-8abe-aaf8-c298-4bd13aecb5e6"],
        ["00000000:01:00.0", "00000000:03:00.0"], [8112, 8114], minor_numbers=[0, 1]),
    "pai__nvidia_smi_sample_ecc_unsupported.xml": xml_case(
        "410.73", "10.0", 2, ["GeForce RTX 2080 Ti"] * 2,
        ["GPU-57567e11-0be2-381b-5132-2ad95c262e58", "GPU-ef1d0068-5bfd-f1e4-7e79-ff35d71d44b8"],
        ["00000000:02:00.0", "00000000:03:00.0"], [10989, 10989], ecc_enabled=[None, None]),
    "telegraf__a100-sxm4-v12.xml": xml_case(
        "535.54.03", "12.2", 4, ["NVIDIA A100-SXM4-80GB"], ["GPU-513536b6-7d19-9063-b049-1e69664bb298"],
        ["00000000:01:00.0"], [81920], mig_enabled=[True], mig_capable=[True], architecture="Ampere",
        minor_numbers=[1], pci_device_ids=["0x20b2"], ecc_enabled=[True]),
    "telegraf__a10g.xml": xml_case(
        "515.105.01", "11.7", 1, ["NVIDIA A10G"], ["GPU-9a9a6c50-2a47-2f51-a902-b82c3b127e94"],
        ["00000000:00:1E.0"], [23028], architecture="Ampere", pci_device_ids=[None]),
    "telegraf__gtx-1070-ti.xml": xml_case(
        None, None, None, ["GeForce GTX 1070 Ti"], ["GPU-f9ba66fc-a7f5-94c5-da19-019ef2f9c665"],
        ["00000000:01:00.0"], [4096], minor_numbers=[None]),
    "telegraf__gtx-1660-ti.xml": xml_case(
        "418.43", "10.1", 1, ["Graphics Device"], ["GPU-304a277d-3545-63b8-3a36-dfde3c992989"],
        ["00000000:43:00.0"], [5912], pci_device_ids=["0x2184"]),
    "telegraf__quadro-p2000-v12.xml": xml_case(
        "525.125.06", "12.0", 1, ["Quadro P2000"], ["GPU-396caaed-39ca-3199-2e68-717cdb786ec6"],
        ["00000000:17:00.0"], [5120], architecture="Pascal"),
    "telegraf__quadro-p400.xml": xml_case(
        "418.43", "10.1", 1, ["Quadro P400"], ["GPU-8f750be4-dfbc-23b9-b33f-da729a536494"],
        ["00000000:43:00.0"], [1998]),
    "telegraf__rtx-3060-v12.xml": xml_case(
        "570.124.04", "12.8", 1, ["NVIDIA GeForce RTX 3060"], ["GPU-d6889ff6-2523-9142-ca3c-1ca3f396a625"],
        ["00000000:2D:00.0"], [12288], architecture="Ampere", pci_classes=["0x0300"]),
    "telegraf__rtx-3080-v12.xml": xml_case(
        "536.40", "12.2", 1, ["NVIDIA GeForce RTX 3080"], ["GPU-19d6d965-2acc-f646-00f8-4c76979aabb4"],
        ["00000000:04:00.0"], [10240], architecture="Ampere", minor_numbers=[None], driver_models=["WDDM"],
        persistence=[None]),
    "telegraf__rtx-3080-v13.xml": xml_case(
        "595.58.03", "13.2", 1, ["NVIDIA GeForce RTX 3080"], ["GPU-19d6d965-2acc-f646-00f8-4c76979aabb4"],
        ["00000000:0C:00.0"], [10240], architecture="Ampere", minor_numbers=[0], driver_models=[None],
        persistence=[False], pci_classes=["0x0300"]),
    "telegraf__rtx-3090-v12.xml": xml_case(
        "525.147.05", "12.0", 1, ["NVIDIA GeForce RTX 3090"], ["GPU-12345678-aaaa-bbbb-cccc-0123456789ab"],
        ["00000000:00:10.0"], [24576], architecture="Ampere", pci_device_ids=[None]),
    "telegraf__rtx-4000-sff-ada-v13.xml": xml_case(
        "595.84", "13.2", 1, ["NVIDIA RTX 4000 SFF Ada Generation"], ["GPU-37037c3f-65c8-ec4d-24a9-420204ad8026"],
        ["00000000:06:00.0"], [20475], architecture="Ada Lovelace", ecc_enabled=[False], pci_device_ids=["0x27b0"]),
    "telegraf__tesla-t4.xml": xml_case(
        "515.105.01", "11.7", 1, ["Tesla T4"], ["GPU-d37e67a5-91dd-3774-a5cb-99096249601a"],
        ["00000000:00:1E.0"], [15360], architecture="Turing", ecc_enabled=[True], pci_device_ids=["0x1eb8"]),
}

MASKED_UUID = "GPU-00000000-0000-0000-0000-000000000000"

EXPECTED_BUNDLES = {
    "nvidia_gpu_exporter__linux-x86_64__nvidia-geforce-rtx-2080-super__595.71.05.txt": {
        "driver_version": "595.71.05", "cuda_version": "13.2", "name": "NVIDIA GeForce RTX 2080 SUPER",
        "uuid": MASKED_UUID, "pci_bus_id": "00000000:0C:00.0", "memory_total_mib": 8192, "architecture": "Turing",
        "mig_capable": False, "mig_enabled": False, "compute_cap": "7.5", "pci_class": "0x0300", "mig": [],
    },
    "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt": {
        "driver_version": "590.48.01", "cuda_version": "13.1", "name": "NVIDIA H100 80GB HBM3",
        "uuid": MASKED_UUID, "pci_bus_id": "00000000:00:09.0", "memory_total_mib": 81559, "architecture": "Hopper",
        "mig_capable": True, "mig_enabled": False, "compute_cap": "9.0", "pci_class": "0x0302", "mig": [],
    },
    "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-mig__590.48.01.txt": {
        "driver_version": "590.48.01", "cuda_version": "13.1", "name": "NVIDIA H100 80GB HBM3",
        "uuid": MASKED_UUID, "pci_bus_id": "00000000:00:09.0", "memory_total_mib": 81559, "architecture": "Hopper",
        "mig_capable": True, "mig_enabled": True, "compute_cap": "9.0", "pci_class": "0x0302",
        # (index, GPU instance, compute instance, MiB, SMs, profile from -L, MIG UUID from -L)
        "mig": [
            (0, 2, 0, 40448, 60, "3g.40gb", "MIG-00000000-0000-0000-0000-000000000000"),
            (1, 3, 0, 20096, 32, "2g.20gb", "MIG-00000001-0000-0000-0000-000000000001"),
            (2, 9, 0, 9984, 16, "1g.10gb", "MIG-00000002-0000-0000-0000-000000000002"),
            (3, 10, 0, 9984, 16, "1g.10gb", "MIG-00000003-0000-0000-0000-000000000003"),
        ],
    },
}

# The product interface (docs/gpu-facts.md): these keys must always be there.
TOP_KEYS = {"present", "driver_loaded", "driver_version", "cuda_version", "gpu_count", "gpus", "error",
            "simulated", "pci_devices", "warnings"}
GPU_KEYS = {"index", "uuid", "name", "pci_bus_id", "memory_total_mib", "mig_enabled", "mig_devices", "mig_capable",
            "mig_pending", "product_brand", "product_architecture", "compute_capability", "persistence_mode",
            "vbios_version", "serial", "minor_number", "ecc_enabled", "ecc_pending"}
MIG_KEYS = {"gpu_instance_id", "compute_instance_id", "memory_total_mib", "index", "profile", "sm_count",
            "attributes", "uuid"}
PCI_KEYS = {"address", "vendor_id", "device_id", "class"}


# --- the capture bundles --------------------------------------------------------------

def bundle_output(fixtures, name, command, phase="idle"):
    """Output of `command` in a bundle; phase "idle", "load" or "capabilities"."""
    try:
        return capture_output(fixtures / name, command, phase)
    except LookupError as exc:
        raise AssertionError(str(exc)) from exc


def bundle_query_csv(fixtures, name, phase="idle"):
    for section in bundle_sections((fixtures / name).read_text()):
        if (section["command"] or "").startswith("nvidia-smi --query-gpu=") and section["title"].startswith(phase):
            return smi.parse_query_csv(section["output"])
    raise AssertionError("%s has no query-gpu section" % name)


# --- every fixture ----------------------------------------------------------------------

def test_every_fixture_has_expectations(fixtures):
    """Each capture in the folder has expectations here, and each expectation a capture."""
    on_disk = {p.name for p in fixtures.iterdir() if p.suffix in (".xml", ".txt")}
    expected = set(EXPECTED_XML) | set(EXPECTED_BUNDLES)
    assert on_disk - expected == set(), "captures without expectations in this test"
    assert expected - on_disk == set(), "expected captures missing from %s" % fixtures
    others = {p.name for p in fixtures.iterdir()} - on_disk
    assert others == {"SOURCES.md"}, "files the test does not know how to read: %s" % sorted(others)


def check_inventory_shape(data):
    assert data["gpu_count"] == len(data["gpus"]) >= 1
    for position, gpu in enumerate(data["gpus"]):
        assert GPU_KEYS <= set(gpu)
        assert gpu["index"] == position
        assert gpu["uuid"].startswith("GPU-")
        assert gpu["name"]
        assert isinstance(gpu["mig_enabled"], bool) and isinstance(gpu["mig_capable"], bool)
        if not gpu["mig_enabled"]:
            assert gpu["mig_devices"] == []
        for mig in gpu["mig_devices"]:
            assert MIG_KEYS <= set(mig)
    json.dumps(data)


def test_every_fixture_parses(fixtures):
    """Whatever the folder holds parses into the documented shape (XML and text bundles)."""
    seen = 0
    for path in sorted(fixtures.iterdir()):
        if path.suffix == ".xml":
            check_inventory_shape(smi.parse_smi_xml(path.read_bytes()))
            seen += 1
        elif path.suffix == ".txt":
            for phase in ("idle", "load"):
                check_inventory_shape(smi.parse_smi_query_text(bundle_output(fixtures, path.name, "nvidia-smi -q", phase)))
            assert smi.parse_smi_list(bundle_output(fixtures, path.name, "nvidia-smi -L", "capabilities"))
            seen += 1
    assert seen == len(EXPECTED_XML) + len(EXPECTED_BUNDLES)


@pytest.mark.parametrize("name", sorted(EXPECTED_XML))
def test_xml_fixture(fixtures, name):
    case = EXPECTED_XML[name]
    data = smi.parse_smi_xml((fixtures / name).read_bytes())
    assert data["driver_version"] == case["driver_version"]
    assert data["cuda_version"] == case["cuda_version"]
    assert data["attached_gpus"] == case["attached_gpus"]
    assert data["gpu_count"] == len(case["names"])
    gpus = data["gpus"]
    assert [g["index"] for g in gpus] == list(range(len(case["names"])))
    assert [g["name"] for g in gpus] == case["names"]
    assert [g["uuid"] for g in gpus] == case["uuids"]
    assert [g["pci_bus_id"] for g in gpus] == case["pci_bus_ids"]
    assert [g["memory_total_mib"] for g in gpus] == case["memory_total_mib"]
    assert [g["mig_enabled"] for g in gpus] == case["mig_enabled"]
    assert [g["mig_capable"] for g in gpus] == case["mig_capable"]
    assert gpus[0]["product_architecture"] == case["architecture"]
    assert len(data["warnings"]) == case["warnings"]
    optional = {
        "minor_numbers": "minor_number", "pci_addresses": "pci_address", "ecc_enabled": "ecc_enabled",
        "pci_device_ids": "pci_device_id", "driver_models": "driver_model", "persistence": "persistence_mode",
        "pci_classes": "pci_class",
    }
    for key, field in optional.items():
        if key in case:
            assert [g[field] for g in gpus] == case[key], field
    for gpu in gpus:
        if not gpu["mig_enabled"]:
            assert gpu["mig_devices"] == []
    check_inventory_shape(data)


def test_a100_mig_devices(fixtures):
    """The A100 capture: MIG on, four 1-slice devices (GPU instances 3-6, 14 SMs, 19968 MiB)."""
    gpu = smi.parse_smi_xml((fixtures / "telegraf__a100-sxm4-v12.xml").read_bytes())["gpus"][0]
    assert gpu["mig_enabled"] is True and gpu["mig_pending"] is True and gpu["mig_capable"] is True
    assert [(m["index"], m["gpu_instance_id"], m["compute_instance_id"], m["memory_total_mib"]) for m in gpu["mig_devices"]] == [
        (0, 3, 0, 19968), (1, 4, 0, 19968), (2, 5, 0, 19968), (3, 6, 0, 19968),
    ]
    first = gpu["mig_devices"][0]
    assert first["sm_count"] == 14
    assert first["bar1_memory_total_mib"] == 32767
    assert first["attributes"] == {"multiprocessor_count": 14, "copy_engine_count": 1, "encoder_count": 0,
                                   "decoder_count": 1, "ofa_count": 0, "jpg_count": 0}
    assert first["profile"] is None and first["uuid"] is None  # the XML has neither
    assert gpu["product_brand"] == "NVIDIA"
    assert gpu["serial"] == "1650522003820"
    assert gpu["vbios_version"] == "92.00.36.00.02"
    assert gpu["persistence_mode"] is False
    assert gpu["ecc_enabled"] is True and gpu["ecc_pending"] is True
    assert gpu["module_id"] == 4
    assert gpu["gsp_firmware_version"] == "535.54.03"
    assert gpu["board_part_number"] == "692-2G506-0212-002"
    assert gpu["pci_device_id_raw"] == "20B210DE"
    assert (gpu["pcie_link_gen_max"], gpu["pcie_link_width_max"]) == (4, 16)
    assert gpu["compute_capability"] is None  # not in the XML; the module asks --query-gpu


def test_out_of_order_keeps_file_order(fixtures):
    """K80s listed in PCI bus order with minor numbers 1, 2, 3, 0: index is the position, minor kept."""
    data = smi.parse_smi_xml((fixtures / "pai__nvidia_smi_out_of_order.xml").read_bytes())
    assert [(g["index"], g["minor_number"], g["uuid"]) for g in data["gpus"]] == [
        (0, 1, K80_UUIDS[0]), (1, 2, K80_UUIDS[1]), (2, 3, K80_UUIDS[2]), (3, 0, K80_UUIDS[3]),
    ]
    assert data["cuda_version"] is None  # <cuda_version>Not Found</cuda_version>
    assert data["warnings"] == []


@pytest.mark.parametrize("name,attached,described", [
    ("telegraf__a100-sxm4-v12.xml", 4, 1),
    ("pai__nvidia_smi_retired_pages.xml", 16, 1),
    ("pai__nvidia_smi_sample.xml", 6, 2),
])
def test_trimmed_captures_warn(fixtures, name, attached, described):
    data = smi.parse_smi_xml((fixtures / name).read_bytes())
    assert data["gpu_count"] == described
    assert data["warnings"] == [
        "nvidia-smi reports attached_gpus=%d but its output describes %d GPU(s); "
        "gpu_count and gpus list the %d described" % (attached, described, described)]


def test_windows_driver(fixtures):
    gpu = smi.parse_smi_xml((fixtures / "telegraf__rtx-3080-v12.xml").read_bytes())["gpus"][0]
    assert gpu["driver_model"] == "WDDM"
    assert gpu["minor_number"] is None and gpu["persistence_mode"] is None
    assert gpu["mig_capable"] is False and gpu["mig_pending"] is None


def test_missing_elements(fixtures):
    """Trimmed excerpts: no driver element (1070 Ti), no <pci> (GT 730): bus id from <gpu id>."""
    data = smi.parse_smi_xml((fixtures / "telegraf__gtx-1070-ti.xml").read_bytes())
    assert data["driver_version"] is None and data["attached_gpus"] is None
    assert data["gpus"][0]["pci_bus_id"] == "00000000:01:00.0"
    gt730 = smi.parse_smi_xml((fixtures / "pai__nvidia_smi_outdated_gpu.xml").read_bytes())["gpus"][0]
    assert gt730["pci_bus_id"] == "00000000:01:00.0"
    assert gt730["memory_total_mib"] is None and gt730["serial"] is None and gt730["vbios_version"] is None
    assert gt730["persistence_mode"] is True


def test_xml_str_and_bytes_agree(fixtures):
    raw = (fixtures / "telegraf__a100-sxm4-v12.xml").read_bytes()
    assert smi.parse_smi_xml(raw) == smi.parse_smi_xml(raw.decode("utf-8"))


# --- the text bundles --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED_BUNDLES))
@pytest.mark.parametrize("phase", ["idle", "load"])
def test_bundle_query_text(fixtures, name, phase):
    case = EXPECTED_BUNDLES[name]
    data = smi.parse_smi_query_text(bundle_output(fixtures, name, "nvidia-smi -q", phase))
    assert (data["driver_version"], data["cuda_version"], data["attached_gpus"], data["gpu_count"]) == (
        case["driver_version"], case["cuda_version"], 1, 1)
    assert data["warnings"] == []
    gpu = data["gpus"][0]
    assert gpu["name"] == case["name"]
    assert gpu["uuid"] == case["uuid"]
    assert gpu["pci_bus_id"] == case["pci_bus_id"]
    assert gpu["memory_total_mib"] == case["memory_total_mib"]
    assert gpu["product_architecture"] == case["architecture"]
    assert gpu["mig_capable"] is case["mig_capable"]
    assert gpu["mig_enabled"] is case["mig_enabled"]
    assert gpu["mig_pending"] is (case["mig_enabled"] if case["mig_capable"] else None)
    assert gpu["pci_class"] == case["pci_class"]
    assert [(m["index"], m["gpu_instance_id"], m["compute_instance_id"], m["memory_total_mib"], m["sm_count"])
            for m in gpu["mig_devices"]] == [m[:5] for m in case["mig"]]


@pytest.mark.parametrize("name", sorted(EXPECTED_BUNDLES))
def test_bundle_list(fixtures, name):
    case = EXPECTED_BUNDLES[name]
    listed = smi.parse_smi_list(bundle_output(fixtures, name, "nvidia-smi -L", "capabilities"))
    assert [(g["index"], g["name"], g["uuid"]) for g in listed] == [(0, case["name"], case["uuid"])]
    assert [(m["index"], m["profile"], m["uuid"]) for m in listed[0]["mig_devices"]] == [
        (m[0], m[5], m[6]) for m in case["mig"]]


@pytest.mark.parametrize("name", sorted(EXPECTED_BUNDLES))
def test_bundle_commands_agree(fixtures, name):
    """-q text, -L and --query-gpu csv of one capture describe the same GPU."""
    case = EXPECTED_BUNDLES[name]
    gpu = smi.parse_smi_query_text(bundle_output(fixtures, name, "nvidia-smi -q"))["gpus"][0]
    row = bundle_query_csv(fixtures, name)[0]
    assert row["name"] == gpu["name"] and row["uuid"] == gpu["uuid"] and row["pci.bus_id"] == gpu["pci_bus_id"]
    assert smi.memory_mib(row["memory.total"]) == gpu["memory_total_mib"]
    assert row["driver_version"] == case["driver_version"]
    assert row["compute_cap"] == case["compute_cap"]
    assert row["mig.mode.current"] == ({True: "Enabled", False: "Disabled"}[gpu["mig_enabled"]] if gpu["mig_capable"] else None)
    smi.merge_compute_capability([gpu], [row])
    assert gpu["compute_capability"] == case["compute_cap"]


def test_h100_mig_bundle_merged(fixtures):
    """The H100 MIG capture: 3g.40gb + 2g.20gb + 2x 1g.10gb, profiles and MIG UUIDs from -L."""
    name = "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-mig__590.48.01.txt"
    gpus = smi.parse_smi_query_text(bundle_output(fixtures, name, "nvidia-smi -q"))["gpus"]
    smi.merge_smi_list(gpus, smi.parse_smi_list(bundle_output(fixtures, name, "nvidia-smi -L", "capabilities")))
    assert [(m["gpu_instance_id"], m["profile"], m["memory_total_mib"], m["uuid"]) for m in gpus[0]["mig_devices"]] == [
        (m[1], m[5], m[3], m[6]) for m in EXPECTED_BUNDLES[name]["mig"]]
    assert gpus[0]["mig_devices"][0]["attributes"] == {
        "multiprocessor_count": 60, "copy_engine_count": 3, "encoder_count": 0, "decoder_count": 3,
        "ofa_count": 0, "jpg_count": 3}
    assert gpus[0]["mig_devices"][0]["bar1_memory_total_mib"] == 24739


def test_query_text_details(fixtures):
    name = "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-mig__590.48.01.txt"
    gpu = smi.parse_smi_query_text(bundle_output(fixtures, name, "nvidia-smi -q"))["gpus"][0]
    assert gpu["vbios_version"] == "96.00.A5.00.01"
    assert gpu["persistence_mode"] is True
    assert gpu["minor_number"] == 0
    assert gpu["module_id"] == 7
    assert gpu["pci_device_id"] == "0x2330" and gpu["pci_device_id_raw"] == "233010DE"
    assert gpu["virtualization_mode"] == "Pass-Through"
    assert gpu["board_part_number"] == "692-2G520-0200-000"
    assert (gpu["pcie_link_gen_max"], gpu["pcie_link_width_current"]) == (5, 16)


def test_query_text_rejects_other_text():
    with pytest.raises(smi.SmiParseError):
        smi.parse_smi_query_text("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n")


def test_list_old_mig_format():
    """The R450 form of MIG lines, as in NVIDIA's MIG user guide."""
    listed = smi.parse_smi_list(
        "GPU 0: A100-SXM4-40GB (UUID: GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f)\n"
        "  MIG 1g.5gb Device 0: (UUID: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/7/0)\n"
        "  MIG 1g.5gb Device 1: (UUID: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/8/0)\n")
    assert listed[0]["name"] == "A100-SXM4-40GB"
    assert [(m["index"], m["profile"], m["uuid"]) for m in listed[0]["mig_devices"]] == [
        (0, "1g.5gb", "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/7/0"),
        (1, "1g.5gb", "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/8/0"),
    ]


# --- values and bad input ----------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("81920 MiB", 81920), ("4096 MiB", 4096), ("8 GiB", 8192), ("2048 KiB", 2), ("N/A", None),
    ("[N/A]", None), ("", None), (None, None), ("lots", None), ("12 parsecs", None),
])
def test_memory_mib(value, expected):
    assert smi.memory_mib(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("Enabled", True), ("Disabled", False), ("N/A", None), ("[N/A]", None), (None, None), ("Pending", None),
])
def test_enabled(value, expected):
    assert smi.enabled(value) is expected


@pytest.mark.parametrize("value,expected", [
    ("4", 4), ("16x", 16), ("0x1e", 30), ("N/A", None), ("Not Found", None), ("1 %", 1), ("4000 KB/s", None),
])
def test_to_int(value, expected):
    assert smi.to_int(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("12.2", "12.2"), ("Not Found", None), ("N/A", None), (None, None), ("  13.1 ", "13.1"),
])
def test_cuda_version(value, expected):
    assert smi.cuda_version(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("00000000:07:00.0", "0000:07:00.0"), ("00001580:00:00.0", "1580:00:00.0"), ("00000000:2D:00.0", "0000:2d:00.0"),
    ("0000:00:1E.0", "0000:00:1e.0"), ("N/A", None), ("GPU-0", None),
])
def test_pci_address(value, expected):
    assert smi.pci_address(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("20B210DE", "0x20b2"), ("0x233010DE", "0x2330"), ("000000DE", None), ("[REDACTED]", None), ("N/A", None),
])
def test_smi_device_id(value, expected):
    assert smi.smi_device_id(value) == expected


def test_malformed_xml(fixtures):
    """A capture cut in the middle (nvidia-smi killed while printing) is a parse error, not a traceback."""
    raw = (fixtures / "telegraf__tesla-t4.xml").read_bytes()
    with pytest.raises(smi.SmiParseError, match="malformed XML"):
        smi.parse_smi_xml(raw[:len(raw) // 2])


@pytest.mark.parametrize("data,match", [
    ("", "empty"),
    ("<html><body>502 Bad Gateway</body></html>", "<html>"),
    ('<?xml version="1.0"?>\n<!DOCTYPE nvidia_smi_log [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>\n'
     "<nvidia_smi_log><driver_version>&b;</driver_version></nvidia_smi_log>", "entities"),
    ('<?xml version="1.0"?>\n<!DOCTYPE nvidia_smi_log SYSTEM "file:///etc/passwd" [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     "<nvidia_smi_log>&x;</nvidia_smi_log>", "entities"),
])
def test_bad_documents(data, match):
    with pytest.raises(smi.SmiParseError, match=match):
        smi.parse_smi_xml(data)


def test_doctype_without_subset_is_fine():
    data = smi.parse_smi_xml('<?xml version="1.0" ?>\n<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v99.dtd">\n'
                             "<nvidia_smi_log><attached_gpus>0</attached_gpus></nvidia_smi_log>")
    assert data["gpu_count"] == 0 and data["attached_gpus"] == 0 and data["warnings"] == []


@pytest.mark.parametrize("message,unsupported", [
    ("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.", True),
    ("This operation is not supported on this platform", True),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
     "Make sure that the latest NVIDIA driver is installed and running.", False),
    ("Failed to initialize NVML: Driver/library version mismatch NVML library version: 535.161", False),
    ("No devices were found", False),
])
def test_xml_unsupported(message, unsupported):
    assert smi.xml_unsupported(message) is unsupported


def test_smi_error_message():
    assert smi.smi_error_message(
        "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.161\n", "") == \
        "Failed to initialize NVML: Driver/library version mismatch NVML library version: 535.161"
    assert smi.smi_error_message("", "") == "no output"


# --- PCI ---------------------------------------------------------------------------------

# lspci -n -D lines of a DGX A100-like machine: Intel host bridge, ASPEED BMC VGA (display class,
# not NVIDIA), ConnectX-6, an A100 (3D controller 0302), NVSwitch (bridge 0680, NVIDIA but not display)
# and a GeForce's HDMI audio function (0403, NVIDIA but not display).
LSPCI = """\
0000:00:00.0 0600: 8086:09a2 (rev 04)
0000:03:00.0 0300: 1a03:2000 (rev 41)
0000:0c:00.0 0207: 15b3:101b
0000:07:00.0 0302: 10de:20b2 (rev a1)
0000:c4:00.0 0680: 10de:1af1 (rev a1)
0000:0f:00.0 0300: 10de:1e81 (rev a1)
0000:0f:00.1 0403: 10de:10f8 (rev a1)
"""


def test_parse_lspci():
    assert smi.parse_lspci(LSPCI) == [
        {"address": "0000:07:00.0", "vendor_id": "0x10de", "device_id": "0x20b2", "class": "0x0302", "driver": None},
        {"address": "0000:0f:00.0", "vendor_id": "0x10de", "device_id": "0x1e81", "class": "0x0300", "driver": None},
    ]
    assert smi.parse_lspci("") == []


@pytest.mark.parametrize("vendor,klass,expected", [
    ("0x10de", "0x030200", True), ("0x10de", "0x030000", True), ("0x10de", "0x038000", True),
    ("0x10de", "0x040300", False), ("0x10de", "0x068000", False), ("0x1a03", "0x030000", False),
    ("10de", "0302", True), ("0x10de", "garbage", False),
])
def test_is_nvidia_display(vendor, klass, expected):
    assert smi.is_nvidia_display(vendor, klass) is expected


# (address, vendor, device, class, bound driver): what sysfs shows on a GPU host.
SYSFS_GPU_HOST = [
    ("0000:00:00.0", "0x8086", "0x09a2", "0x060000", None),
    ("0000:03:00.0", "0x1a03", "0x2000", "0x030000", "ast"),
    ("0000:01:00.0", "0x10de", "0x20b2", "0x030200", "nvidia"),
    ("0000:0c:00.0", "0x15b3", "0x101b", "0x020700", "mlx5_core"),
    ("0000:c4:00.0", "0x10de", "0x1af1", "0x068000", None),
]
SYSFS_CPU_HOST = [entry for entry in SYSFS_GPU_HOST if entry[1] != "0x10de"]


def make_sysfs(root, devices):
    base = root / "sys/bus/pci/devices"
    drivers = root / "sys/bus/pci/drivers"
    base.mkdir(parents=True)
    for address, vendor, device, klass, driver in devices:
        folder = base / address
        folder.mkdir()
        for attr, value in (("vendor", vendor), ("device", device), ("class", klass)):
            (folder / attr).write_text(value + "\n")
        if driver:
            (drivers / driver).mkdir(parents=True, exist_ok=True)
            os.symlink(str(drivers / driver), str(folder / "driver"))
    return base


def test_scan_sysfs(tmp_path):
    assert module.scan_sysfs(str(make_sysfs(tmp_path, SYSFS_GPU_HOST))) == [
        {"address": "0000:01:00.0", "vendor_id": "0x10de", "device_id": "0x20b2", "class": "0x0302", "driver": "nvidia"},
    ]


def test_scan_sysfs_unusable(tmp_path):
    assert module.scan_sysfs(str(tmp_path / "absent")) is None
    (tmp_path / "empty").mkdir()
    assert module.scan_sysfs(str(tmp_path / "empty")) is None


# --- the module, with run_command patched --------------------------------------------------

SMI = "/usr/bin/nvidia-smi"
XML = ("-q", "-x")
LIST = ("-L",)
QUERY_CAP = ("--query-gpu=uuid,compute_cap", "--format=csv,noheader")

COULD_NOT_COMMUNICATE = (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                            "Make sure that the latest NVIDIA driver is installed and running.\n\n")
VERSION_MISMATCH = (18, "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.161\n")
NO_DEVICES = (6, "No devices were found\n")
INVALID_COMBINATION = (2, "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n")


class Exit(Exception):
    pass


class Failed(Exception):
    pass


def run_module(args, commands, tools=("nvidia-smi",)):
    """Run main(); `commands` maps (tool name, *arguments) to (rc, stdout); `tools` are on PATH.

    Returns (exit_json kwargs, run_command calls with their environment update, module warnings).
    """
    calls = []
    warnings = []

    def fake_run_command(self, argv, **kwargs):
        calls.append((list(argv), dict(self.run_command_environ_update)))
        key = (os.path.basename(argv[0]),) + tuple(argv[1:])
        rc, out = commands[key]
        return rc, out, ""

    def fake_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/%s" % name if name in tools else None

    def fake_exit(self, **kwargs):
        raise Exit(kwargs)

    def fake_fail(self, **kwargs):
        raise Failed(kwargs)

    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "run_command", fake_run_command), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path", fake_bin_path), \
            mock.patch.object(basic.AnsibleModule, "warn", lambda self, msg: warnings.append(msg)), \
            mock.patch.object(basic.AnsibleModule, "exit_json", fake_exit), \
            mock.patch.object(basic.AnsibleModule, "fail_json", fake_fail):
        with pytest.raises(Exit) as exc:
            module.main()
    result = exc.value.args[0]
    json.dumps(result)  # plain JSON
    return result, calls, warnings


def facts_of(result):
    assert result["changed"] is False
    facts = result["ansible_facts"]["nvidia"]
    assert TOP_KEYS <= set(facts)
    for device in facts["pci_devices"]:
        assert PCI_KEYS <= set(device)
    return facts


@pytest.fixture
def gpu_host(tmp_path):
    return str(make_sysfs(tmp_path, SYSFS_GPU_HOST))


@pytest.fixture
def cpu_host(tmp_path):
    return str(make_sysfs(tmp_path, SYSFS_CPU_HOST))


def a100_commands(fixtures):
    """nvidia-smi on the A100 host: the real -q -x capture.

    The capture comes without -L and --query-gpu outputs; these two are written for this test in
    the form nvidia-smi prints (see the H100 bundle's -L), with the capture's GPU UUID, made-up MIG
    UUIDs, the A100-80GB profile with one compute slice (14 SMs) and 19968 MiB (1g.20gb), and the
    A100's compute capability 8.0.
    """
    uuid = "GPU-513536b6-7d19-9063-b049-1e69664bb298"
    listed = "GPU 0: NVIDIA A100-SXM4-80GB (UUID: %s)\n" % uuid + "".join(
        "  MIG 1g.20gb     Device  %d: (UUID: MIG-%d0000000-0000-0000-0000-000000000000)\n" % (i, i) for i in range(4))
    return {
        ("nvidia-smi",) + XML: (0, (fixtures / "telegraf__a100-sxm4-v12.xml").read_text()),
        ("nvidia-smi",) + LIST: (0, listed),
        ("nvidia-smi",) + QUERY_CAP: (0, "%s, 8.0\n" % uuid),
    }


def test_module_gpu_host(fixtures, gpu_host):
    result, calls, warnings = run_module({"sysfs_pci_path": gpu_host}, a100_commands(fixtures))
    facts = facts_of(result)
    assert facts["present"] is True and facts["driver_loaded"] is True and facts["simulated"] is False
    assert facts["error"] is None
    assert (facts["driver_version"], facts["cuda_version"], facts["gpu_count"]) == ("535.54.03", "12.2", 1)
    assert facts["source"] == "nvidia-smi -q -x" and facts["nvidia_smi_path"] == SMI
    assert facts["pci_source"] == "sysfs"
    assert facts["pci_devices"] == [
        {"address": "0000:01:00.0", "vendor_id": "0x10de", "device_id": "0x20b2", "class": "0x0302", "driver": "nvidia"}]
    gpu = facts["gpus"][0]
    assert gpu["pci_address"] == facts["pci_devices"][0]["address"]
    assert gpu["compute_capability"] == "8.0"
    assert [(m["gpu_instance_id"], m["profile"]) for m in gpu["mig_devices"]] == [
        (3, "1g.20gb"), (4, "1g.20gb"), (5, "1g.20gb"), (6, "1g.20gb")]
    assert gpu["mig_devices"][1]["uuid"] == "MIG-10000000-0000-0000-0000-000000000000"
    # The trimmed capture says 4 attached GPUs and describes 1: reported, and warned about.
    assert facts["warnings"] == warnings == [
        "nvidia-smi reports attached_gpus=4 but its output describes 1 GPU(s); gpu_count and gpus list the 1 described"]
    # Every parsed command ran with LC_ALL=C, as an argument list.
    assert [c[0] for c in calls] == [[SMI, "-q", "-x"], [SMI, "-L"], [SMI] + list(QUERY_CAP)]
    assert all(env == {"LC_ALL": "C"} for _, env in calls)


def test_module_check_mode(fixtures, gpu_host):
    normal, dummy, dummy2 = run_module({"sysfs_pci_path": gpu_host}, a100_commands(fixtures))
    checked, calls, dummy3 = run_module({"sysfs_pci_path": gpu_host, "_ansible_check_mode": True}, a100_commands(fixtures))
    assert checked["changed"] is False
    assert checked["ansible_facts"] == normal["ansible_facts"]
    assert len(calls) == 3  # read-only commands run in check mode too


def test_module_no_nvidia_device(cpu_host):
    """A CPU-only host (BMC VGA, NIC, host bridge) without nvidia-smi: not present, not an error."""
    result, calls, warnings = run_module({"sysfs_pci_path": cpu_host}, {}, tools=())
    facts = facts_of(result)
    assert facts["present"] is False and facts["driver_loaded"] is False
    assert facts["gpu_count"] == 0 and facts["gpus"] == [] and facts["pci_devices"] == []
    assert facts["error"] is None and facts["pci_source"] == "sysfs"
    assert calls == [] and warnings == []


def test_module_no_device_driver_installed(cpu_host):
    """nvidia-smi installed on a host without GPU: it says so, driver_loaded false."""
    result, calls, dummy = run_module({"sysfs_pci_path": cpu_host}, {("nvidia-smi",) + XML: NO_DEVICES})
    facts = facts_of(result)
    assert facts["present"] is False and facts["driver_loaded"] is False and facts["gpu_count"] == 0
    assert facts["error"] == "nvidia-smi -q -x failed (rc=6): No devices were found"


def test_module_smi_not_installed(gpu_host):
    result, calls, dummy = run_module({"sysfs_pci_path": gpu_host}, {}, tools=())
    facts = facts_of(result)
    assert facts["present"] is True and facts["driver_loaded"] is False
    assert facts["error"] == "nvidia-smi is not installed (not found: nvidia-smi in PATH or /usr/local/nvidia/bin)"
    assert facts["nvidia_smi_path"] is None and calls == []


@pytest.mark.parametrize("recorded,message", [
    (COULD_NOT_COMMUNICATE, "nvidia-smi -q -x failed (rc=9): NVIDIA-SMI has failed because it couldn't communicate "
                            "with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."),
    (VERSION_MISMATCH, "nvidia-smi -q -x failed (rc=18): Failed to initialize NVML: Driver/library version mismatch "
                       "NVML library version: 535.161"),
    (NO_DEVICES, "nvidia-smi -q -x failed (rc=6): No devices were found"),
])
def test_module_driver_failures(gpu_host, recorded, message):
    result, calls, dummy = run_module({"sysfs_pci_path": gpu_host}, {("nvidia-smi",) + XML: recorded})
    facts = facts_of(result)
    assert facts["present"] is True and facts["driver_loaded"] is False
    assert facts["error"] == message
    assert facts["gpu_count"] == 0 and facts["gpus"] == [] and facts["driver_version"] is None
    assert [c[0] for c in calls] == [[SMI, "-q", "-x"]]  # no text fallback for a driver failure


def test_module_malformed_xml(fixtures, gpu_host):
    raw = (fixtures / "telegraf__tesla-t4.xml").read_text()
    result, calls, dummy = run_module({"sysfs_pci_path": gpu_host}, {("nvidia-smi",) + XML: (0, raw[:5000])})
    facts = facts_of(result)
    assert facts["driver_loaded"] is False and facts["gpus"] == []
    assert facts["error"].startswith("nvidia-smi -q -x output cannot be parsed: malformed XML")


def test_module_text_fallback(fixtures, gpu_host):
    """-q -x refused, -q works: the H100 MIG capture's text, -L and compute capability."""
    name = "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-mig__590.48.01.txt"
    commands = {
        ("nvidia-smi",) + XML: INVALID_COMBINATION,
        ("nvidia-smi", "-q"): (0, bundle_output(fixtures, name, "nvidia-smi -q")),
        ("nvidia-smi",) + LIST: (0, bundle_output(fixtures, name, "nvidia-smi -L", "capabilities")),
        ("nvidia-smi",) + QUERY_CAP: (0, "%s, 9.0\n" % MASKED_UUID),
    }
    result, calls, warnings = run_module({"sysfs_pci_path": gpu_host}, commands)
    facts = facts_of(result)
    assert facts["driver_loaded"] is True and facts["error"] is None and facts["source"] == "nvidia-smi -q"
    assert (facts["driver_version"], facts["cuda_version"], facts["gpu_count"]) == ("590.48.01", "13.1", 1)
    gpu = facts["gpus"][0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["compute_capability"] == "9.0"
    migs = [(m["gpu_instance_id"], m["compute_instance_id"], m["memory_total_mib"], m["profile"]) for m in gpu["mig_devices"]]
    assert migs == [
        (2, 0, 40448, "3g.40gb"), (3, 0, 20096, "2g.20gb"), (9, 0, 9984, "1g.10gb"), (10, 0, 9984, "1g.10gb")]
    assert warnings == facts["warnings"]
    assert any("the GPU facts come from the text output of nvidia-smi -q" in w for w in warnings)
    # sysfs shows the A100 at 0000:01:00.0, nvidia-smi an H100 at 0000:00:09.0: both reported as they are.
    assert facts["present"] is True
    assert [c[0][1:] for c in calls] == [["-q", "-x"], ["-q"], ["-L"], list(QUERY_CAP)]


def test_module_text_fallback_fails_too(gpu_host):
    commands = {("nvidia-smi",) + XML: INVALID_COMBINATION, ("nvidia-smi", "-q"): COULD_NOT_COMMUNICATE}
    facts = facts_of(run_module({"sysfs_pci_path": gpu_host}, commands)[0])
    assert facts["driver_loaded"] is False
    assert facts["error"].startswith("nvidia-smi -q -x failed (rc=2): Invalid combination of input arguments.")
    assert "nvidia-smi -q failed too (rc=9): NVIDIA-SMI has failed" in facts["error"]


def test_module_extra_queries_are_optional(fixtures, gpu_host):
    """Old drivers know no compute_cap field: the inventory stays, compute_capability null."""
    commands = {
        ("nvidia-smi",) + XML: (0, (fixtures / "pai__nvidia_smi_sample_ecc_unsupported.xml").read_text()),
        ("nvidia-smi",) + QUERY_CAP: (2, 'Field "compute_cap" is not a valid field to query.\n'),
    }
    facts = facts_of(run_module({"sysfs_pci_path": gpu_host}, commands)[0])
    assert facts["driver_loaded"] is True and facts["gpu_count"] == 2 and facts["error"] is None
    assert [g["compute_capability"] for g in facts["gpus"]] == [None, None]


def test_module_lspci_fallback(tmp_path, fixtures):
    commands = {
        ("lspci", "-n", "-D"): (0, LSPCI),
        ("nvidia-smi",) + XML: (0, (fixtures / "telegraf__tesla-t4.xml").read_text()),
        ("nvidia-smi",) + QUERY_CAP: (0, "GPU-d37e67a5-91dd-3774-a5cb-99096249601a, 7.5\n"),
    }
    result, calls, warnings = run_module({"sysfs_pci_path": str(tmp_path / "no-sysfs")}, commands,
                                         tools=("nvidia-smi", "lspci"))
    facts = facts_of(result)
    assert facts["pci_source"] == "lspci"
    assert [d["address"] for d in facts["pci_devices"]] == ["0000:07:00.0", "0000:0f:00.0"]
    assert facts["present"] is True and facts["gpus"][0]["name"] == "Tesla T4"
    assert facts["gpus"][0]["compute_capability"] == "7.5"
    assert calls[0][0] == ["/usr/bin/lspci", "-n", "-D"] and calls[0][1] == {"LC_ALL": "C"}
    assert warnings == []


def test_module_no_pci_view_but_smi_answers(tmp_path, fixtures):
    """No sysfs, no lspci (a container): presence comes from nvidia-smi, with a warning."""
    commands = {
        ("nvidia-smi",) + XML: (0, (fixtures / "telegraf__tesla-t4.xml").read_text()),
        ("nvidia-smi",) + QUERY_CAP: (0, "GPU-d37e67a5-91dd-3774-a5cb-99096249601a, 7.5\n"),
    }
    result, calls, warnings = run_module({"sysfs_pci_path": str(tmp_path / "none")}, commands)
    facts = facts_of(result)
    assert facts["present"] is True and facts["pci_source"] is None and facts["pci_devices"] == []
    assert warnings == ["%s cannot be read and lspci is not installed: whether an NVIDIA device exists "
                        "is only known from nvidia-smi" % (tmp_path / "none")]


def test_module_no_pci_view_no_smi(tmp_path):
    facts = facts_of(run_module({"sysfs_pci_path": str(tmp_path / "none")}, {}, tools=())[0])
    assert facts["present"] is False and facts["driver_loaded"] is False
    assert facts["error"].startswith("nvidia-smi is not installed")


def test_module_smi_sees_gpu_pci_scan_does_not(cpu_host, fixtures):
    commands = {
        ("nvidia-smi",) + XML: (0, (fixtures / "telegraf__tesla-t4.xml").read_text()),
        ("nvidia-smi",) + QUERY_CAP: (0, "GPU-d37e67a5-91dd-3774-a5cb-99096249601a, 7.5\n"),
    }
    result, dummy, warnings = run_module({"sysfs_pci_path": cpu_host}, commands)
    facts = facts_of(result)
    assert facts["present"] is True and facts["pci_devices"] == []
    assert warnings == ["nvidia-smi describes 1 GPU(s) but sysfs shows no NVIDIA display/3D PCI device"]


def test_module_absolute_smi_path(tmp_path, gpu_host, fixtures):
    tool = tmp_path / "opt/nvidia/bin/nvidia-smi"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    commands = {
        ("nvidia-smi",) + XML: (0, (fixtures / "telegraf__tesla-t4.xml").read_text()),
        ("nvidia-smi",) + QUERY_CAP: (0, "GPU-d37e67a5-91dd-3774-a5cb-99096249601a, 7.5\n"),
    }
    result, calls, dummy = run_module({"sysfs_pci_path": gpu_host, "nvidia_smi": str(tool)}, commands, tools=())
    facts = facts_of(result)
    assert facts["nvidia_smi_path"] == str(tool) and calls[0][0] == [str(tool), "-q", "-x"]
    missing = str(tmp_path / "nope/nvidia-smi")
    facts = facts_of(run_module({"sysfs_pci_path": gpu_host, "nvidia_smi": missing}, {}, tools=())[0])
    assert facts["error"] == "nvidia-smi is not installed (not found: %s)" % missing


@pytest.mark.parametrize("name", sorted(EXPECTED_XML))
def test_module_simulated(fixtures, name):
    """Every XML capture works as a simulated GPU host: nothing is run, nothing is scanned."""
    case = EXPECTED_XML[name]
    path = str(fixtures / name)
    result, calls, warnings = run_module({"simulated_smi_xml": path, "sysfs_pci_path": "/nonexistent"}, {}, tools=())
    facts = facts_of(result)
    assert calls == []
    assert facts["simulated"] is True and facts["present"] is True and facts["driver_loaded"] is True
    assert facts["source"] == "simulated" and facts["nvidia_smi_path"] == path and facts["error"] is None
    assert facts["gpu_count"] == len(case["names"])
    assert [g["uuid"] for g in facts["gpus"]] == case["uuids"]
    assert (facts["driver_version"], facts["cuda_version"]) == (case["driver_version"], case["cuda_version"])
    assert facts["pci_source"] == "simulated"
    assert [d["address"] for d in facts["pci_devices"]] == [smi.pci_address(b) for b in case["pci_bus_ids"]]
    assert all(d["vendor_id"] == "0x10de" for d in facts["pci_devices"])
    assert len(warnings) == case["warnings"]


def test_module_simulated_a100_pci(fixtures):
    facts = facts_of(run_module({"simulated_smi_xml": str(fixtures / "telegraf__a100-sxm4-v12.xml")}, {}, tools=())[0])
    assert facts["pci_devices"] == [
        {"address": "0000:01:00.0", "vendor_id": "0x10de", "device_id": "0x20b2", "class": None, "driver": "nvidia"}]
    assert [m["profile"] for m in facts["gpus"][0]["mig_devices"]] == [None] * 4


def run_failing(args):
    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "fail_json", lambda self, **kw: (_ for _ in ()).throw(Failed(kw))), \
            mock.patch.object(basic.AnsibleModule, "run_command", side_effect=AssertionError("nothing may run")):
        with pytest.raises(Failed) as exc:
            module.main()
    return exc.value.args[0]["msg"]


def test_module_simulated_file_missing(tmp_path):
    path = str(tmp_path / "var/lib/gpuforge/simulated/nvidia-smi.xml")
    assert run_failing({"simulated_smi_xml": path}) == "simulated_smi_xml: %s does not exist on this host" % path


def test_module_simulated_file_malformed(tmp_path, fixtures):
    path = tmp_path / "nvidia-smi.xml"
    path.write_bytes((fixtures / "telegraf__a10g.xml").read_bytes()[:3000])
    msg = run_failing({"simulated_smi_xml": str(path)})
    assert msg.startswith("simulated_smi_xml: %s is not nvidia-smi -q -x output: malformed XML" % path)


def test_module_rejects_unknown_option():
    assert "bogus" in run_failing({"bogus": 1})
