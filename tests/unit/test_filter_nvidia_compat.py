"""Unit tests for the gpuforge.cluster driver / CUDA / GPU compatibility filters
(plugins/filter/nvidia_compat.py).

The CUDA rows come from NVIDIA's "CUDA Toolkit and Corresponding Driver Versions" table;
they are checked against every real nvidia-smi capture in shared/fixtures/nvidia-smi
(the driver a capture ran prints the "CUDA Version" max_cuda_for_driver must return),
and the architecture catalogue against the <product_architecture> those captures report.
"""

import re
import xml.etree.ElementTree as ET

import pytest


from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.filter import nvidia_compat as nc  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils import nvidia_catalog as cat  # noqa: E402
from gpuforge.shared_inputs import nvidia_smi_fixtures  # noqa: E402


def xml_captures():
    """(file name, driver, cuda, [(product name, product architecture or None)]) of every XML capture."""
    directory = nvidia_smi_fixtures()
    files = sorted(directory.glob("*.xml"))
    assert len(files) >= 15, "shared nvidia-smi fixtures missing in %s" % directory
    result = []
    for path in files:
        root = ET.parse(path).getroot()
        gpus = [(gpu.findtext("product_name"), gpu.findtext("product_architecture")) for gpu in root.findall("gpu")]
        result.append((path.name, root.findtext("driver_version"), root.findtext("cuda_version"), gpus))
    return result


def text_captures():
    """The same for the nvidia_gpu_exporter bundles (`nvidia-smi -q` section)."""
    result = []
    for path in sorted(nvidia_smi_fixtures().glob("nvidia_gpu_exporter__*.txt")):
        text = path.read_text(encoding="utf-8")
        driver = re.search(r"^Driver Version\s+:\s+(\S+)", text, re.M).group(1)
        cuda = re.search(r"^CUDA Version\s+:\s+(\S+)", text, re.M).group(1)
        name = re.search(r"Product Name\s+:\s+(.+)", text).group(1).strip()
        arch = re.search(r"Product Architecture\s+:\s+(.+)", text).group(1).strip()
        result.append((path.name, driver, cuda, [(name, arch)]))
    assert len(result) == 3
    return result


CAPTURES = xml_captures() + text_captures()


# --- CUDA -> driver ---------------------------------------------------------------------------


@pytest.mark.parametrize("cuda, driver", [
    ("12.2", "535.54.03"),
    ("12.2.0", "535.54.03"),
    ("12.2.1", "535.86.09"),
    ("12.2.2", "535.104.05"),
    ("12.2.140", "535.104.05"),  # nvcc's 12.2.140 is 12.2 Update 2
    ("12.0", "525.60.13"),
    ("12.8", "570.26"),
    ("12.9.1", "575.57.08"),
    ("13.0", "580.65.06"),
    ("13.1", "590.44.01"),
    ("13.1.1", "590.48.01"),
    ("13.2", "595.45.04"),
    ("13.3", "610.43.02"),
    ("11.0", "450.51.05"),
    ("11.8", "520.61.05"),
    ("11.7", "515.43.04"),
    ("10.2", "440.33"),
    ("10.1", "418.39"),
    ("10.0", "410.48"),
    ("9.2", "396.26"),
    ("CUDA 12.4", "550.54.14"),
    (12.2, "535.54.03"),
])
def test_cuda_min_driver_toolkit(cuda, driver):
    assert nc.cuda_min_driver(cuda) == driver


@pytest.mark.parametrize("cuda, driver", [
    ("12.2", "525.60.13"),
    ("12.9", "525.60.13"),
    ("12.x", "525.60.13"),
    ("11.1", "450.80.02"),
    ("11.x", "450.80.02"),
    ("13.0", "580"),
    ("13.3", "580"),
    ("10.2", "440.33"),  # no minor version compatibility before CUDA 11
])
def test_cuda_min_driver_minor_compat(cuda, driver):
    assert nc.cuda_min_driver(cuda, "minor") == driver


def test_toolkit_table_never_needs_an_older_driver_for_a_newer_cuda():
    rows = sorted(cat.CUDA_TOOLKIT_DRIVERS, key=lambda row: row[0])
    keys = [cat.driver_key(cat.parse_driver(row[2])) for row in rows]
    assert keys == sorted(keys)
    assert len({row[0] for row in rows}) == len(rows)


@pytest.mark.parametrize("driver, cuda, compat, expected", [
    ("535.54.03", "12.2", "toolkit", True),
    ("535.54.03", "12.2.1", "toolkit", False),
    ("535.54.03", "12.4", "toolkit", False),
    ("535.54.03", "12.4", "minor", True),
    ("535.54.03", "13.0", "minor", False),
    ("515.105.01", "11.7", "toolkit", True),
    ("515.105.01", "11.8", "toolkit", False),
    ("515.105.01", "11.8", "minor", True),
    ("580.95.05", "13.0.2", "toolkit", True),
    ("580.95.05", "13.1", "toolkit", False),
    ("580.95.05", "13.2", "minor", True),
    ("535", "12.2.2", "toolkit", True),  # a bare branch stands for its newest release
    ("535", "12.3", "toolkit", False),
    ("590.48.01", "11.8", "toolkit", True),
])
def test_driver_supports_cuda(driver, cuda, compat, expected):
    assert nc.driver_supports_cuda(driver, cuda, compat) is expected


@pytest.mark.parametrize("capture, driver, cuda, _gpus", [c for c in CAPTURES if c[1] and re.match(r"^\d+\.\d+$", c[2] or "")])
def test_max_cuda_for_driver_matches_what_nvidia_smi_printed(capture, driver, cuda, _gpus):
    # telegraf__rtx-3080-v12.xml ran the Windows driver 536.40; it lands in the same row (12.2).
    assert nc.max_cuda_for_driver(driver) == cuda, capture
    assert nc.driver_supports_cuda(driver, cuda) is True


def test_captures_cover_the_cuda_families():
    seen = {c[2] for c in CAPTURES if c[2]}
    assert {"10.0", "10.1", "11.7", "12.0", "12.2", "12.8", "13.1", "13.2"} <= seen


@pytest.mark.parametrize("driver, toolkit, minor", [
    ("535.54.03", "12.2", "12.9"),
    ("515.105.01", "11.7", "11.8"),
    ("470.82.01", "11.4", "11.8"),
    ("470", "11.4", "11.8"),
    ("580", "13.0", "13.3"),
    ("418.39", "10.1", "10.1"),
    ("384.66", "8.0", "8.0"),
])
def test_max_cuda_for_driver(driver, toolkit, minor):
    assert nc.max_cuda_for_driver(driver) == toolkit
    assert nc.max_cuda_for_driver(driver, "minor") == minor


@pytest.mark.parametrize("driver, branch", [
    ("535.54.03", "535"), ("570.26", "570"), ("R580", "580"), (535, "535"), (" 590.48.01 ", "590"),
    ("1000.10.01", "1000"),  # a branch is 3 or 4 digits (names.DRIVER_BRANCH_PATTERN)
])
def test_driver_branch(driver, branch):
    assert nc.driver_branch(driver) == branch


# --- architectures --------------------------------------------------------------------------


ARCH_NAMES = {"Ampere": "Ampere", "Pascal": "Pascal", "Turing": "Turing", "Ada Lovelace": "Ada Lovelace",
              "Hopper": "Hopper"}


@pytest.mark.parametrize("capture, name, arch", [
    (c[0], name, arch) for c in CAPTURES for name, arch in c[3] if arch])
def test_architecture_matches_what_nvidia_smi_reports(capture, name, arch):
    assert nc.gpu_architecture(name)["name"] == ARCH_NAMES[arch], capture


@pytest.mark.parametrize("name, arch, capability, family", [
    ("Tesla K80", "Kepler", "3.7", "kepler"),                 # pai__nvidia_smi_out_of_order.xml
    ("Tesla V100-SXM3-32GB", "Volta", "7.0", "volta"),        # pai__nvidia_smi_retired_pages.xml
    ("GeForce GTX 1070", "Pascal", "6.1", "pascal"),          # pai__nvidia_smi_sample.xml
    ("GeForce GTX 1070 Ti", "Pascal", "6.1", "pascal"),
    ("GeForce RTX 2080 Ti", "Turing", "7.5", "turing"),
    ("Quadro P400", "Pascal", "6.1", "pascal"),
    ("Tesla T4", "Turing", "7.5", "turing"),
    ("NVIDIA A100-SXM4-80GB", "Ampere", "8.0", "ampere"),
    ("NVIDIA A30", "Ampere", "8.0", "ampere"),
    ("NVIDIA A10G", "Ampere", "8.6", "ampere"),
    ("NVIDIA A16", "Ampere", "8.6", "ampere"),
    ("NVIDIA A40", "Ampere", "8.6", "ampere"),
    ("NVIDIA RTX A6000", "Ampere", "8.6", "ampere"),
    ("NVIDIA GeForce RTX 3090", "Ampere", "8.6", "ampere"),
    ("NVIDIA L4", "Ada Lovelace", "8.9", "ada-lovelace"),
    ("NVIDIA L40S", "Ada Lovelace", "8.9", "ada-lovelace"),
    ("NVIDIA GeForce RTX 4090", "Ada Lovelace", "8.9", "ada-lovelace"),
    ("NVIDIA RTX 6000 Ada Generation", "Ada Lovelace", "8.9", "ada-lovelace"),
    ("Quadro RTX 6000", "Turing", "7.5", "turing"),
    ("NVIDIA H100 80GB HBM3", "Hopper", "9.0", "hopper"),
    ("NVIDIA H200", "Hopper", "9.0", "hopper"),
    ("NVIDIA GH200 480GB", "Hopper", "9.0", "hopper"),
    ("NVIDIA B200", "Blackwell", "10.0", "blackwell"),
    ("NVIDIA GB200", "Blackwell", "10.0", "blackwell"),
    ("NVIDIA GeForce RTX 5090", "Blackwell", "12.0", "blackwell"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "Blackwell", "12.0", "blackwell"),
    ("Tesla P100-PCIE-16GB", "Pascal", "6.0", "pascal"),
    ("Tesla P4", "Pascal", "6.1", "pascal"),
    ("Tesla M60", "Maxwell", "5.2", "maxwell"),
    ("Tesla K40m", "Kepler", "3.5", "kepler"),
])
def test_gpu_architecture(name, arch, capability, family):
    result = nc.gpu_architecture(name)
    assert (result["name"], result["compute_capability"], result["family"]) == (arch, capability, family)


def test_gpu_architecture_details():
    assert nc.gpu_architecture("NVIDIA A100-SXM4-80GB") == {
        "name": "Ampere", "family": "ampere", "compute_capability": "8.0", "min_driver": "450.36.06",
        "last_driver_branch": None, "first_cuda": "11.0", "last_cuda_major": None, "open_kernel_modules": "supported"}
    kepler = nc.gpu_architecture("Tesla K80")
    assert (kepler["last_driver_branch"], kepler["last_cuda_major"], kepler["open_kernel_modules"]) == (470, 11, "unsupported")
    assert nc.gpu_architecture("NVIDIA B200")["open_kernel_modules"] == "required"
    assert nc.gpu_architecture("NVIDIA GH200 480GB")["open_kernel_modules"] == "required"


@pytest.mark.parametrize("name", ["Graphics Device", "GeForce GT 730", "Matrox G200eW"])
def test_unknown_gpus(name):
    # "Graphics Device" is what the GTX 1660 Ti capture (telegraf__gtx-1660-ti.xml) reports.
    assert nc.gpu_architecture(name) is None
    with pytest.raises(AnsibleFilterError, match="GPU '%s' is not in the gpuforge catalogue" % name):
        nc.gpu_architecture(name, strict=True)


# --- driver <-> GPU -------------------------------------------------------------------------


@pytest.mark.parametrize("driver, gpu, modules, expected", [
    ("470.239.06", "Tesla K80", "proprietary", True),
    ("535.54.03", "Tesla K80", "proprietary", False),       # Kepler ends with R470
    ("580.95.05", "Tesla V100-SXM3-32GB", "proprietary", True),
    ("590.48.01", "Tesla V100-SXM3-32GB", "proprietary", False),   # Maxwell/Pascal/Volta end with R580
    ("580", "Quadro P2000", "proprietary", True),
    ("590", "GeForce GTX 1070", "proprietary", False),
    ("580", "Tesla V100-SXM3-32GB", "open", False),          # open modules need Turing+
    ("535.54.03", "Tesla T4", "open", True),
    ("510.47.03", "Tesla T4", "open", False),                # open modules start with R515
    ("510.47.03", "Tesla T4", "proprietary", True),
    ("400.0", "Tesla T4", "proprietary", False),             # before CUDA 10.0's 410.48
    ("570.133.20", "NVIDIA B200", "open", True),
    ("570.124.06", "NVIDIA B200", "open", False),            # HGX B200 needs 570.133.20
    ("570", "NVIDIA B200", "open", True),
    ("580.95.05", "NVIDIA B200", "proprietary", False),      # Blackwell needs the open modules
    ("565", "NVIDIA GeForce RTX 5090", "open", False),
    ("570.26", "NVIDIA GeForce RTX 5090", "open", True),
    ("570.133.20", "NVIDIA RTX PRO 6000 Blackwell Server Edition", "open", False),  # needs R575
    ("515.105.01", "NVIDIA H100 80GB HBM3", "proprietary", False),  # Hopper starts with CUDA 11.8 / 520.61.05
    ("520.61.05", "NVIDIA H100 80GB HBM3", "proprietary", True),
    ("550.54.14", "NVIDIA GH200 480GB", "proprietary", False),
    ("550.54.14", "NVIDIA GH200 480GB", "open", True),
    ("450.51.05", "NVIDIA A100-SXM4-40GB", "proprietary", True),
    ("450.51.05", "NVIDIA GeForce RTX 3080", "proprietary", False),  # GA10x starts with CUDA 11.1 / 455.23
])
def test_driver_supports_gpu(driver, gpu, modules, expected):
    assert nc.driver_supports_gpu(driver, gpu, modules) is expected


def test_driver_supports_gpu_unknown_gpu_fails():
    with pytest.raises(AnsibleFilterError, match="driver_supports_gpu: GPU 'Graphics Device' is not in the gpuforge catalogue"):
        nc.driver_supports_gpu("535.54.03", "Graphics Device")


# --- nvidia_driver_check ----------------------------------------------------------------------

# ansible_facts['nvidia']['gpus'] as gpuforge.cluster.nvidia_gpu_facts returns them for the
# captures named (only the keys the check reads, plus index/uuid).
A100_GPUS = [{"index": 0, "uuid": "GPU-513536b6-7d19-9063-b049-1e69664bb298", "name": "NVIDIA A100-SXM4-80GB",
              "memory_total_mib": 81920, "mig_enabled": True}]
K80_GPUS = [{"index": i, "name": "Tesla K80", "memory_total_mib": 11441, "mig_enabled": False} for i in range(4)]


def k80_capture_gpus():
    root = ET.parse(nvidia_smi_fixtures() / "pai__nvidia_smi_out_of_order.xml").getroot()
    return [{"index": i, "name": gpu.findtext("product_name"),
             "memory_total_mib": int(gpu.findtext("fb_memory_usage/total").split()[0]), "mig_enabled": False}
            for i, gpu in enumerate(root.findall("gpu"))]


def test_k80_facts_match_the_capture():
    assert k80_capture_gpus() == K80_GPUS


def test_check_passes_for_the_a100_capture():
    assert nc.nvidia_driver_check("535.54.03", A100_GPUS, cuda="12.2") == []
    assert nc.nvidia_driver_check("535.54.03", {"present": True, "gpus": A100_GPUS}, cuda="12.2") == []


def test_check_reports_cuda_too_new_for_the_driver():
    problems = nc.nvidia_driver_check("535.54.03", A100_GPUS, cuda="12.4")
    assert problems == ["driver 535.54.03 supports CUDA up to 12.2; CUDA 12.4 needs driver 550.54.14 or newer "
                        "(the driver runs it with CUDA minor version compatibility, cuda_compat=minor)"]
    assert nc.nvidia_driver_check("535.54.03", A100_GPUS, cuda="12.4", cuda_compat="minor") == []
    problems = nc.nvidia_driver_check("535.54.03", A100_GPUS, cuda="13.0", cuda_compat="minor")
    assert problems == ["driver 535.54.03 supports CUDA up to 12.9; CUDA 13.0 needs driver 580 or newer"]


def test_check_reports_every_kepler_gpu_of_the_k80_capture():
    problems = nc.nvidia_driver_check("535.54.03", k80_capture_gpus())
    assert problems == [
        "GPU %d: Tesla K80 (Kepler, compute capability 3.7) is supported only by driver branches up to R470; "
        "driver 535.54.03 is branch R535" % i for i in range(4)]
    problems = nc.nvidia_driver_check("470.239.06", k80_capture_gpus(), cuda="12.0")
    assert problems[0] == ("GPU 0: CUDA 12.0 cannot target Tesla K80 (Kepler, compute capability 3.7); "
                           "the last toolkit for it is CUDA 11.x")
    assert problems[-1] == "driver 470.239.06 supports CUDA up to 11.4; CUDA 12.0 needs driver 525.60.13 or newer"
    assert nc.nvidia_driver_check("470.239.06", k80_capture_gpus(), cuda="11.4") == []


def test_check_mixed_generations_have_no_single_kernel_module_flavour():
    gpus = [{"index": 0, "name": "Tesla V100-SXM3-32GB"}, {"index": 1, "name": "NVIDIA B200"}]
    assert nc.nvidia_driver_check("580.95.05", gpus, kernel_modules="proprietary") == [
        "GPU 1: NVIDIA B200 (Blackwell, compute capability 10.0) is supported only with the open kernel modules "
        "(kernel_modules=open)"]
    assert nc.nvidia_driver_check("580.95.05", gpus, kernel_modules="open") == [
        "GPU 0: Tesla V100-SXM3-32GB (Volta, compute capability 7.0) cannot use the open kernel modules "
        "(they need Turing or newer); use the proprietary modules"]


def test_check_blackwell_and_cuda():
    problems = nc.nvidia_driver_check("570.124.06", ["NVIDIA B200"], cuda="12.4", kernel_modules="open")
    assert problems == [
        "GPU 0: NVIDIA B200 (Blackwell, compute capability 10.0) needs driver 570.133.20 or newer; "
        "driver 570.124.06 is older",
        "GPU 0: CUDA 12.4 cannot target NVIDIA B200 (Blackwell, compute capability 10.0); support starts with CUDA 12.8"]


def test_check_pascal_with_cuda_13():
    problems = nc.nvidia_driver_check("580", ["Quadro P2000"], cuda="13.0")
    assert problems == ["GPU 0: CUDA 13.0 cannot target Quadro P2000 (Pascal, compute capability 6.1); "
                        "the last toolkit for it is CUDA 12.x"]
    assert nc.nvidia_driver_check("590", ["Quadro P2000"]) == [
        "GPU 0: Quadro P2000 (Pascal, compute capability 6.1) is supported only by driver branches up to R580; "
        "driver branch R590 is newer"]


def test_check_unknown_gpus_are_skipped_unless_strict():
    gpus = [{"index": 0, "name": "Graphics Device"}]
    assert nc.nvidia_driver_check("418.43", gpus) == []
    assert nc.nvidia_driver_check("418.43", gpus, strict=True) == [
        "GPU 0: 'Graphics Device' is not in the gpuforge catalogue; its driver support is unknown"]


def test_check_without_gpus():
    assert nc.nvidia_driver_check("580", []) == []
    assert nc.nvidia_driver_check("580", {"present": False, "gpus": []}) == []
    assert nc.nvidia_driver_check("580", None) == []


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: nc.cuda_min_driver("banana"), "CUDA version 'banana' is not a CUDA version"),
    (lambda: nc.cuda_min_driver(None), "CUDA version must be a version string, got None"),
    (lambda: nc.cuda_min_driver(True), "CUDA version must be a version string"),
    (lambda: nc.cuda_min_driver(12), "CUDA version '12' is not a CUDA version"),
    (lambda: nc.cuda_min_driver(["12.2"]), "CUDA version must be a version string, got list"),
    (lambda: nc.cuda_min_driver("-12.2"), "is not a CUDA version"),
    (lambda: nc.cuda_min_driver("12.7"), "CUDA 12.7 is not in NVIDIA's toolkit/driver table"),
    (lambda: nc.cuda_min_driver("14.0"), "CUDA 14.0 is not in NVIDIA's toolkit/driver table"),
    (lambda: nc.cuda_min_driver("12.x"), "give a CUDA minor version such as 12.0"),
    (lambda: nc.cuda_min_driver("9.x", "minor"), "minor version compatibility exists for 11.x, 12.x and 13.x only"),
    (lambda: nc.cuda_min_driver("12.2", "major"), "compat must be one of toolkit, minor, got 'major'"),
    (lambda: nc.driver_supports_cuda("banana", "12.2"), "driver version 'banana' is not an NVIDIA driver version"),
    (lambda: nc.driver_supports_cuda("535.54.03", "banana"), "'banana' is not a CUDA version"),
    (lambda: nc.driver_supports_cuda(None, "12.2"), "driver version must be a version string, got None"),
    (lambda: nc.driver_branch("banana"), "driver_branch: driver version 'banana' is not an NVIDIA driver version"),
    (lambda: nc.driver_branch(None), "driver version must be a version string"),
    (lambda: nc.driver_branch(-535), "'-535' is not an NVIDIA driver version"),
    (lambda: nc.driver_branch("5"), "'5' is not an NVIDIA driver version"),
    # Changed by design: a branch is 3 or 4 digits now (names.DRIVER_BRANCH_PATTERN, shared with the variable
    # rules); the 2-digit legacy branches (96.43.23 was read as 96) are no longer accepted.
    (lambda: nc.driver_branch("96.43.23"), "'96.43.23' is not an NVIDIA driver version"),
    (lambda: nc.driver_branch("053.1"), "'053.1' is not an NVIDIA driver version"),
    (lambda: nc.driver_branch("535.54.03.1"), "is not an NVIDIA driver version"),
    (lambda: nc.driver_branch(False), "driver version must be a version string"),
    (lambda: nc.max_cuda_for_driver("300.1"), "driver 300.1 is older than every CUDA toolkit in the table"),
    (lambda: nc.max_cuda_for_driver("535", "sideways"), "compat must be one of toolkit, minor"),
    (lambda: nc.gpu_architecture(None), "GPU name must be a string"),
    (lambda: nc.gpu_architecture(""), "GPU name is empty"),
    (lambda: nc.gpu_architecture("Tesla T4", strict="yes"), "strict must be true or false"),
    (lambda: nc.driver_supports_gpu("535", "Tesla T4", "closed"), "kernel_modules must be one of proprietary, open"),
    (lambda: nc.driver_supports_gpu("banana", "Tesla T4"), "'banana' is not an NVIDIA driver version"),
    (lambda: nc.driver_supports_gpu("535", 4), "GPU name must be a string"),
    (lambda: nc.nvidia_driver_check("banana", A100_GPUS), "nvidia_driver_check: driver version 'banana'"),
    (lambda: nc.nvidia_driver_check("535.54.03", "Tesla T4"), "gpus must be a list, got str"),
    (lambda: nc.nvidia_driver_check("535.54.03", {"present": True}), "the dict has no 'gpus' key"),
    (lambda: nc.nvidia_driver_check("535.54.03", [None]), "gpus[0] has no GPU name"),
    (lambda: nc.nvidia_driver_check("535.54.03", [{"index": 0}]), "gpus[0] has no GPU name"),
    (lambda: nc.nvidia_driver_check("535.54.03", A100_GPUS, cuda="banana"), "'banana' is not a CUDA version"),
    (lambda: nc.nvidia_driver_check("535.54.03", A100_GPUS, kernel_modules="nouveau"), "kernel_modules must be one of"),
    (lambda: nc.nvidia_driver_check("535.54.03", A100_GPUS, cuda_compat=None), "cuda_compat must be one of"),
    (lambda: nc.nvidia_driver_check("535.54.03", A100_GPUS, strict=1), "strict must be true or false"),
])
def test_bad_input(call, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        call()


def test_filters_are_registered():
    assert set(nc.FilterModule().filters()) == {
        "cuda_min_driver", "driver_supports_cuda", "driver_branch", "max_cuda_for_driver",
        "gpu_architecture", "driver_supports_gpu", "nvidia_driver_check"}
