"""Unit tests for the gpuforge.cluster MIG filters (plugins/filter/nvidia_mig.py).

Layouts are checked against NVIDIA's published profile tables and placements
(plugins/module_utils/nvidia_catalog.py). Two real captures anchor the tables: the
telegraf A100-SXM4-80GB `nvidia-smi -q -x` (four 1g.20gb devices) and the
nvidia_gpu_exporter H100 80GB HBM3 bundle (3g.40gb + 2g.20gb + 2x 1g.10gb).
"""

import itertools
import re
import xml.etree.ElementTree as ET

import pytest


from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.filter import nvidia_mig as nm  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils import nvidia_catalog as cat  # noqa: E402
from gpuforge.shared_inputs import nvidia_smi_fixtures  # noqa: E402

A100_80 = "NVIDIA A100-SXM4-80GB"
A100_40 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"
H100_MIG_CAPTURE = "nvidia_gpu_exporter__linux-x86_64__nvidia-h100-mig__590.48.01.txt"
A100_CAPTURE = "telegraf__a100-sxm4-v12.xml"


def fixture_path(name):
    path = nvidia_smi_fixtures() / name
    assert path.is_file(), "missing shared fixture %s" % path
    return path


def section(text, command):
    """One command's output from an nvidia_gpu_exporter capture bundle."""
    marker = "# $ %s\n" % command
    assert marker in text, "capture has no '%s' section" % command
    body = text.split(marker, 1)[1].split("\n", 1)[1]
    return body.split("\n####", 1)[0]


def h100_capture():
    """(profiles from `nvidia-smi -L`, MIG devices from `nvidia-smi -q`) of the H100 MIG capture."""
    text = fixture_path(H100_MIG_CAPTURE).read_text(encoding="utf-8")
    profiles = re.findall(r"^\s+MIG (\S+)\s+Device\s+\d+:", section(text, "nvidia-smi -L"), re.M)
    query = section(text, "nvidia-smi -q")
    devices = []
    for block in query.split("    MIG Device\n")[1:]:
        devices.append({
            "gpu_instance_id": int(re.search(r"GPU Instance ID\s+:\s+(\d+)", block).group(1)),
            "multiprocessor_count": int(re.search(r"Multiprocessor count\s+:\s+(\d+)", block).group(1)),
            "memory_total_mib": int(re.search(r"Shared FB Memory Usage\s+Total\s+:\s+(\d+) MiB", block).group(1)),
        })
    name = re.search(r"Product Name\s+:\s+(.+)", query).group(1).strip()
    return name, profiles, devices


def a100_capture():
    """(product name, MIG devices) of the telegraf A100 capture."""
    root = ET.parse(fixture_path(A100_CAPTURE)).getroot()
    gpu = root.find("gpu")
    devices = []
    for mig in gpu.find("mig_devices").findall("mig_device"):
        devices.append({
            "gpu_instance_id": int(mig.findtext("gpu_instance_id")),
            "multiprocessor_count": int(mig.findtext("device_attributes/shared/multiprocessor_count")),
            "memory_total_mib": int(mig.findtext("fb_memory_usage/total").split()[0]),
        })
    return gpu.findtext("product_name"), devices


def placements(result):
    return [(item["profile"], item["placement"]["start"], item["placement"]["size"]) for item in result]


# --- real captures ------------------------------------------------------------------------


def test_h100_capture_layout_validates_and_gives_mixed_resources():
    name, profiles, _devices = h100_capture()
    assert name == H100
    assert profiles == ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]
    result = nm.mig_layout_validate(profiles, name)
    assert placements(result) == [("3g.40gb", 4, 4), ("2g.20gb", 0, 2), ("1g.10gb", 2, 1), ("1g.10gb", 3, 1)]
    assert nm.mig_resources(profiles, name, "mixed") == {
        "nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1, "nvidia.com/mig-1g.10gb": 2}


def test_h100_capture_memory_and_sms_match_the_catalogue():
    name, profiles, devices = h100_capture()
    table = nm.mig_profiles(name)
    for profile_name, device in zip(profiles, devices):
        profile = [p for p in table["profiles"] if p["name"] == profile_name][0]
        # nvidia-smi -lgip prints GiB with two decimals (19.62 for 20096 MiB).
        assert device["memory_total_mib"] / 1024 == pytest.approx(profile["memory_gib"], abs=0.01)
        assert device["multiprocessor_count"] in profile["multiprocessors"]
        inferred, why = cat.infer_mig_profile(cat.mig_table(name), device["memory_total_mib"],
                                              device["multiprocessor_count"])
        assert why is None and inferred["name"] == profile_name


def test_a100_capture_is_four_1g_20gb_devices():
    name, devices = a100_capture()
    assert name == A100_80
    assert [d["memory_total_mib"] for d in devices] == [19968] * 4
    table = cat.mig_table(name)
    found = [cat.infer_mig_profile(table, d["memory_total_mib"], d["multiprocessor_count"])[0]["name"] for d in devices]
    assert found == ["1g.20gb"] * 4
    result = nm.mig_layout_validate(found, name)
    assert placements(result) == [("1g.20gb", 0, 2), ("1g.20gb", 2, 2), ("1g.20gb", 4, 2), ("1g.20gb", 6, 2)]
    assert nm.mig_resources(found, name, "single", gpus=4) == {"nvidia.com/gpu": 16}
    # Without the SM count 19968 MiB could be 1g.20gb or 2g.20gb.
    profile, why = cat.infer_mig_profile(table, 19968)
    assert profile is None and "1g.20gb or 2g.20gb" in why


# --- layouts on A100 80GB -------------------------------------------------------------------


@pytest.mark.parametrize("layout, expected", [
    (["4g.40gb", "3g.40gb"], [("4g.40gb", 0, 4), ("3g.40gb", 4, 4)]),
    (["3g.40gb", "3g.40gb"], [("3g.40gb", 0, 4), ("3g.40gb", 4, 4)]),
    (["1g.10gb"] * 7, [("1g.10gb", s, 1) for s in range(7)]),
    (["4g.40gb", "2g.20gb", "1g.10gb"], [("4g.40gb", 0, 4), ("2g.20gb", 4, 2), ("1g.10gb", 6, 1)]),
    ({"1g.20gb": 3, "1g.10gb": 2}, [("1g.20gb", 0, 2), ("1g.20gb", 2, 2), ("1g.20gb", 6, 2),
                                    ("1g.10gb", 4, 1), ("1g.10gb", 5, 1)]),
    ({"7g.80gb": 1}, [("7g.80gb", 0, 8)]),
    (["MIG 1g.10gb+me", "3G.40GB", "2g.20gb"], [("3g.40gb", 0, 4), ("2g.20gb", 4, 2), ("1g.10gb+me", 6, 1)]),
])
def test_a100_80gb_layouts_that_fit(layout, expected):
    result = nm.mig_layout_validate(layout, A100_80)
    assert placements(result) == expected
    first = result[0]
    assert set(first) == {"profile", "profile_id", "compute_slices", "memory_slices", "memory_gib", "placement"}


def test_layout_item_carries_the_published_profile_data():
    result = nm.mig_layout_validate({"3g.40gb": 1}, A100_80)
    assert result == [{"profile": "3g.40gb", "profile_id": 9, "compute_slices": 3, "memory_slices": 4,
                       "memory_gib": 39.25, "placement": {"start": 0, "size": 4}}]


@pytest.mark.parametrize("layout, message", [
    (["4g.40gb", "4g.40gb"], "2 instances of MIG profile '4g.40gb' requested on NVIDIA A100-SXM4-80GB, at most 1 fit"),
    (["3g.40gb", "3g.40gb", "1g.10gb"], "does not fit NVIDIA A100-SXM4-80GB: it needs 7 of 7 compute slices and 9 of 8"),
    (["1g.10gb"] * 8, "8 instances of MIG profile '1g.10gb' requested on NVIDIA A100-SXM4-80GB, at most 7 fit"),
    (["7g.80gb", "1g.10gb"], "needs 8 of 7 compute slices"),
    (["4g.40gb", "2g.20gb", "2g.20gb"], "needs 8 of 7 compute slices"),
    (["1g.10gb+me", "1g.10gb+me"], "'1g.10gb+me' requested on NVIDIA A100-SXM4-80GB, at most 1 fit"),
    (["3g.20gb"], "MIG profile '3g.20gb' does not exist on NVIDIA A100-SXM4-80GB"),
    (["5g.50gb"], "'5g.50gb' does not exist"),
])
def test_a100_80gb_layouts_that_do_not_fit(layout, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        nm.mig_layout_validate(layout, A100_80)


def test_placement_search_rejects_overlapping_published_placements():
    # 4g.40gb is only published at {0}:4, so two of them overlap even ignoring the instance limit.
    table = cat.mig_table(A100_80)
    assert cat.mig_fit(table, {"4g.40gb": 2}) is None
    # 3g.40gb sits at 0 or 4 (four memory slices each): nothing is left for a 1g.10gb.
    assert cat.mig_fit(table, {"3g.40gb": 2, "1g.10gb": 1}) is None
    assert cat.mig_fit(table, {"3g.40gb": 1, "1g.10gb": 4}) is not None


@pytest.mark.parametrize("key", sorted(cat.MIG_TABLES))
def test_every_fitting_combination_uses_published_placements_without_overlap(key):
    table = cat.MIG_TABLES[key]
    plain = [p for p in table["profiles"] if not p["media_extensions"]]
    checked = 0
    for counts in itertools.product(*[range(p["max_instances"] + 1) for p in plain]):
        layout = {p["name"]: n for p, n in zip(plain, counts) if n}
        if not layout:
            continue
        result = cat.mig_fit(table, layout)
        memory = sum(cat.find_profile(table, n)["memory_slices"] * k for n, k in layout.items())
        compute = sum(cat.find_profile(table, n)["compute_slices"] * k for n, k in layout.items())
        if result is None:
            assert memory > table["memory_slices"] or compute > table["compute_slices"], layout
            continue
        checked += 1
        used = set()
        for item in result:
            assert item["placement"] in item["profile"]["placements"]
            span = set(range(item["placement"]["start"], item["placement"]["start"] + item["placement"]["size"]))
            assert not used & span, layout
            used |= span
        assert len(result) == sum(layout.values())
    assert checked > 0


def test_a30_layouts():
    a30 = "NVIDIA A30"
    assert placements(nm.mig_layout_validate(["2g.12gb", "1g.6gb", "1g.6gb"], a30)) == [
        ("2g.12gb", 0, 2), ("1g.6gb", 2, 1), ("1g.6gb", 3, 1)]
    assert placements(nm.mig_layout_validate({"1g.6gb": 4}, a30)) == [("1g.6gb", s, 1) for s in range(4)]
    with pytest.raises(AnsibleFilterError, match="only one MIG instance per GPU can have media extensions"):
        nm.mig_layout_validate(["1g.6gb+me", "2g.12gb+me"], a30)
    with pytest.raises(AnsibleFilterError, match="needs 5 of 4 compute slices"):
        nm.mig_layout_validate(["4g.24gb", "1g.6gb"], a30)


@pytest.mark.parametrize("gpu, layout", [
    ("NVIDIA A100-PCIE-40GB", ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]),
    ("NVIDIA A100 80GB PCIe", ["3g.40gb", "3g.40gb"]),
    ("NVIDIA H100 PCIe", ["1g.20gb"] * 4),
    ("NVIDIA H100 NVL", ["3g.47gb", "1g.24gb", "1g.12gb"]),
    ("NVIDIA H200", ["4g.71gb", "3g.71gb"]),
    ("NVIDIA H200 NVL", ["1g.18gb"] * 7),
    ("NVIDIA B200", ["3g.90gb", "2g.45gb", "1g.23gb", "1g.23gb"]),
    ("nvidia b200", {"7g.180gb": 1}),
    ("NVIDIA GH200 480GB", ["4g.48gb", "3g.48gb"]),
    ("A100-SXM4-80GB", ["7g.80gb"]),
])
def test_gpu_names_map_to_their_tables(gpu, layout):
    result = nm.mig_layout_validate(layout, gpu)
    assert sum(item["compute_slices"] for item in result) <= 7


def test_profile_from_another_gpu_is_named_in_the_error():
    with pytest.raises(AnsibleFilterError, match=r"'1g\.10gb' does not exist on NVIDIA H200 .*1g\.18gb"):
        nm.mig_layout_validate(["1g.10gb"], "NVIDIA H200")


@pytest.mark.parametrize("gpu", ["Tesla T4", "NVIDIA GeForce RTX 3080", "NVIDIA L40S", "Graphics Device"])
def test_gpus_without_mig_are_rejected(gpu):
    with pytest.raises(AnsibleFilterError, match="GPU '%s' does not support MIG" % re.escape(gpu)):
        nm.mig_layout_validate(["1g.10gb"], gpu)
    assert nm.mig_capable(gpu) is False


def test_a100_without_memory_size_is_ambiguous():
    with pytest.raises(AnsibleFilterError, match="does not say 40GB or 80GB"):
        nm.mig_layout_validate(["1g.10gb"], "NVIDIA A100")


def test_mig_capable_gpus_without_a_table():
    assert nm.mig_capable("NVIDIA GB200") is True
    with pytest.raises(AnsibleFilterError, match="supports MIG but its profile table is not in the gpuforge catalogue"):
        nm.mig_profiles("NVIDIA GB200")


@pytest.mark.parametrize("gpu", [A100_80, A100_40, "NVIDIA A30", H100, "NVIDIA H100 NVL", "NVIDIA H200",
                                 "NVIDIA B200", "NVIDIA GH200 480GB", "NVIDIA RTX PRO 6000 Blackwell Server Edition"])
def test_mig_capable_true(gpu):
    assert nm.mig_capable(gpu) is True


def test_empty_layout_is_a_valid_mig_enabled_gpu_without_instances():
    assert nm.mig_layout_validate([], A100_80) == []
    assert nm.mig_layout_validate({"1g.10gb": 0}, A100_80) == []


# --- resources ------------------------------------------------------------------------------


def test_resources_for_each_strategy():
    layout = {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}
    assert nm.mig_resources(layout, H100, "mixed", gpus=8) == {
        "nvidia.com/mig-3g.40gb": 8, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-1g.10gb": 16}
    assert nm.mig_resources(layout, H100, "none", gpus=8) == {"nvidia.com/gpu": 8}
    assert nm.mig_resources(None, H100, "none") == {"nvidia.com/gpu": 1}
    assert nm.mig_resources(["1g.10gb"] * 7, H100, "single", gpus=2) == {"nvidia.com/gpu": 14}
    # The device plugin turns '+' into '.' in resource names.
    assert nm.mig_resources(["1g.10gb+me", "3g.40gb"], H100, "mixed") == {
        "nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-1g.10gb.me": 1}
    assert nm.mig_resources([], H100, "mixed") == {}


def test_single_strategy_needs_one_profile():
    with pytest.raises(AnsibleFilterError, match="strategy 'single' needs every MIG instance on NVIDIA H100 80GB HBM3 "
                                                 "to use the same profile, the layout has 1g.10gb, 3g.40gb"):
        nm.mig_resources(["3g.40gb", "1g.10gb"], H100, "single")
    with pytest.raises(AnsibleFilterError, match="no instances"):
        nm.mig_resources([], H100, "single")


def test_resources_validate_the_layout():
    with pytest.raises(AnsibleFilterError, match="mig_resources: 2 instances of MIG profile '4g.40gb'"):
        nm.mig_resources(["4g.40gb", "4g.40gb"], A100_80, "none")
    with pytest.raises(AnsibleFilterError, match="mig_resources: MIG layout 2 x 3g.40gb \\+ 1 x 1g.10gb does not fit"):
        nm.mig_resources({"3g.40gb": 2, "1g.10gb": 1}, A100_80, "mixed")


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "bogus"}, "strategy must be one of none, single, mixed"),
    ({"gpus": 0}, "gpus must be at least 1, got 0"),
    ({"gpus": -2}, "gpus must be at least 1, got -2"),
    ({"gpus": "8"}, "gpus must be an integer"),
    ({"gpus": True}, "gpus must be an integer"),
    ({"strategy": None}, "strategy must be one of"),
])
def test_resources_bad_arguments(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        nm.mig_resources(["1g.10gb"], H100, **kwargs)


def test_resources_mixed_without_layout():
    with pytest.raises(AnsibleFilterError, match="strategy 'mixed' needs a MIG layout"):
        nm.mig_resources(None, H100, "mixed")


# --- profile tables --------------------------------------------------------------------------


def test_profiles_table_for_h100():
    table = nm.mig_profiles(H100)
    assert table["key"] == "H100_80GB"
    assert (table["compute_slices"], table["memory_slices"]) == (7, 8)
    assert [p["name"] for p in table["profiles"]] == [
        "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
    by_name = {p["name"]: p for p in table["profiles"]}
    assert by_name["3g.40gb"]["placements"] == [{"start": 0, "size": 4}, {"start": 4, "size": 4}]
    assert by_name["1g.20gb"]["placements"] == [{"start": s, "size": 2} for s in (0, 2, 4, 6)]
    assert [p["max_instances"] for p in table["profiles"]] == [7, 1, 4, 3, 2, 1, 1]
    assert [p["profile_id"] for p in table["profiles"]] == [19, 20, 15, 14, 9, 5, 0]
    assert any("docs.nvidia.com/datacenter/tesla/mig-user-guide" in s for s in table["sources"])
    # A copy: changing it does not change the catalogue.
    table["profiles"].clear()
    assert nm.mig_profiles(H100)["profiles"]


@pytest.mark.parametrize("gpu, names", [
    (A100_40, ["1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"]),
    ("NVIDIA A30", ["1g.6gb", "1g.6gb+me", "2g.12gb", "2g.12gb+me", "4g.24gb"]),
    ("NVIDIA H100 NVL", ["1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"]),
    ("NVIDIA H200", ["1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"]),
    ("NVIDIA B200", ["1g.23gb", "1g.23gb+me", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"]),
])
def test_profile_names_match_the_mig_user_guide(gpu, names):
    assert [p["name"] for p in nm.mig_profiles(gpu)["profiles"]] == names


@pytest.mark.parametrize("key", sorted(cat.MIG_TABLES))
def test_profile_names_agree_with_their_slices(key):
    for profile in cat.MIG_TABLES[key]["profiles"]:
        match = re.match(r"^(\d+)g\.(\d+)gb(\+me)?$", profile["name"])
        assert int(match.group(1)) == profile["compute_slices"]
        assert bool(match.group(3)) == profile["media_extensions"]
        if profile["memory_gib"]:
            # The name's GB is the profile memory rounded up, in GB or GiB.
            assert profile["memory_gib"] <= int(match.group(2)) <= profile["memory_gib"] * 1.2


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout, message", [
    ("3g.40gb", "the layout must be a list of MIG profile names or a dict"),
    (None, "the layout must be a list of MIG profile names or a dict"),
    (7, "the layout must be a list"),
    ([None], "MIG profile name must be a string"),
    ([3], "MIG profile name must be a string"),
    (["banana"], "'banana' is not a MIG profile name"),
    ({"3g.40gb": -1}, "the count of MIG profile '3g.40gb' must not be negative, got -1"),
    ({"3g.40gb": "1"}, "the count of MIG profile '3g.40gb' must be an integer"),
    ({"3g.40gb": True}, "the count of MIG profile '3g.40gb' must be an integer"),
    ({"3g.40gb": None}, "must be an integer"),
])
def test_bad_layouts(layout, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        nm.mig_layout_validate(layout, A100_80)


@pytest.mark.parametrize("gpu", [None, "", "   ", 42, True, ["NVIDIA A100-SXM4-80GB"]])
def test_bad_gpu_names(gpu):
    for call in (lambda: nm.mig_layout_validate(["1g.10gb"], gpu), lambda: nm.mig_profiles(gpu),
                 lambda: nm.mig_capable(gpu), lambda: nm.mig_resources(["1g.10gb"], gpu)):
        with pytest.raises(AnsibleFilterError, match="gpu_name must be the nvidia-smi product name"):
            call()


def test_filters_are_registered():
    assert set(nm.FilterModule().filters()) == {"mig_layout_validate", "mig_resources", "mig_profiles", "mig_capable"}
