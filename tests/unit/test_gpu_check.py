"""The real-GPU check (tests/gpu/check_real_gpu.py) on a real capture, without a GPU.

The H100 MIG bundle holds what `nvidia-smi -q`, `--query-gpu ... --format=csv`, `-L`
and the plain banner printed on the same card at the same time: the module's parser
reads `-q` (+ `-L`), the check reads the rest directly, and they must agree. A
tampered capture must make the check fail, naming the field.
"""

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import check_real_gpu as check  # noqa: E402
from test_nvidia_gpu_facts import bundle_output, bundle_sections, smi  # noqa: E402

H100_MIG = "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-mig__590.48.01.txt"
H100 = "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt"
RTX = "nvidia_gpu_exporter__linux-x86_64__nvidia-geforce-rtx-2080-super__595.71.05.txt"


def query_csv_text(fixtures, name):
    for section in bundle_sections((fixtures / name).read_text()):
        if (section["command"] or "").startswith("nvidia-smi --query-gpu=") and section["title"].startswith("idle"):
            return section["output"]
    raise AssertionError(name)


def module_facts(fixtures, name):
    """What nvidia_gpu_facts returns for this card (parser + the -L merge the module does)."""
    inv = smi.parse_smi_query_text(bundle_output(fixtures, name, "nvidia-smi -q"))
    smi.merge_smi_list(inv["gpus"], smi.parse_smi_list(bundle_output(fixtures, name, "nvidia-smi -L", "capabilities")))
    return dict(inv, present=True, driver_loaded=True, pci_devices=smi.pci_devices_from_gpus(inv["gpus"]))


def direct(fixtures, name):
    return check.parse_direct(query_csv_text(fixtures, name), bundle_output(fixtures, name, "nvidia-smi"),
                              bundle_output(fixtures, name, "nvidia-smi -L", "capabilities"))


@pytest.mark.parametrize("name", [H100_MIG, H100, RTX])
def test_module_and_nvidia_smi_agree(fixtures, name):
    assert check.compare(module_facts(fixtures, name), direct(fixtures, name)) == []


def test_direct_reading_of_the_mig_card(fixtures):
    d = direct(fixtures, H100_MIG)
    assert d["cuda_version"] == "13.1"
    assert [(g["index"], g["name"], g["pci.bus_id"], g["memory.total"], g["mig.mode.current"]) for g in d["gpus"]] == [
        ("0", "NVIDIA H100 80GB HBM3", "00000000:00:09.0", "81559", "Enabled")]
    assert d["mig_profiles"] == {0: ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]}


@pytest.mark.parametrize("path, value, field", [
    (("gpus", 0, "memory_total_mib"), 81920, "gpu 0 memory_total_mib"),
    (("gpus", 0, "name"), "NVIDIA H100 PCIe", "gpu 0 name"),
    (("gpus", 0, "mig_enabled"), False, "gpu 0 mig_enabled"),
    (("cuda_version",), "12.2", "cuda_version"),
    (("gpu_count",), 2, "gpu_count"),
    (("driver_loaded",), False, "driver_loaded"),
])
def test_a_wrong_fact_is_named(fixtures, path, value, field):
    facts = copy.deepcopy(module_facts(fixtures, H100_MIG))
    target = facts
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    problems = check.compare(facts, direct(fixtures, H100_MIG))
    assert any(p.startswith(field + ":") for p in problems), problems


def test_a_missing_mig_device_is_named(fixtures):
    facts = copy.deepcopy(module_facts(fixtures, H100_MIG))
    facts["gpus"][0]["mig_devices"].pop()
    problems = check.compare(facts, direct(fixtures, H100_MIG))
    assert "gpu 0 mig devices: module says 3, nvidia-smi says 4" in problems
