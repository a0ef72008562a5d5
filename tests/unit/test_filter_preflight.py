"""Unit tests for the gpuforge.cluster preflight filters (plugins/filter/preflight.py) and the
module_utils they wrap (argspec.py, preflight_inventory.py, preflight_hosts.py, preflight_report.py).

The facts are trimmed copies of what `ansible.builtin.setup` returned on real hosts:
a Debian 12 lab container on this machine (podman, cgroup v1), an Ubuntu 22.04 VM
and a Rocky 9 VM with cgroup v2 and swap, and a Debian 10 host (unsupported).
"""

import copy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils import preflight_hosts, preflight_report  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils import variable_rules as vr  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils.preflight_report import PreflightError  # noqa: E402

# --- recorded facts ---------------------------------------------------------------

DEBIAN12_LAB = {
    "distribution": "Debian",
    "distribution_version": "12.15",
    "distribution_major_version": "12",
    "distribution_release": "bookworm",
    "os_family": "Debian",
    "architecture": "x86_64",
    "processor_nproc": 2,
    "processor_vcpus": 2,
    "processor_cores": 2,
    "memtotal_mb": 24105,
    "swaptotal_mb": 0,
    "swapfree_mb": 0,
    "hostname": "gf-lab-cp1",
    "fqdn": "gf-lab-cp1",
    "default_ipv4": {"address": "10.89.0.2", "alias": "eth0", "gateway": "10.89.0.1", "interface": "eth0",
                     "netmask": "255.255.255.0", "network": "10.89.0.0", "prefix": "24", "type": "ether"},
    "all_ipv4_addresses": ["10.89.0.2"],
    "all_ipv6_addresses": ["fe80::1cdb:dff:fee1:eea2"],
    "date_time": {"date": "2026-11-29", "epoch": "1795936801", "epoch_int": "1795936801",
                  "iso8601": "2026-11-29T07:20:01Z", "iso8601_micro": "2026-11-29T07:20:01.968359Z",
                  "time": "07:20:01", "tz": "UTC", "tz_offset": "+0000"},
    "python": {"executable": "/usr/bin/python3.11", "has_sslcontext": True, "type": "cpython",
               "version": {"major": 3, "micro": 2, "minor": 11, "releaselevel": "final", "serial": 0},
               "version_info": [3, 11, 2, "final", 0]},
    "python_version": "3.11.2",
    "virtualization_type": "podman",
    "virtualization_role": "guest",
    "kernel": "6.18.44-fc-v509",
    "system": "Linux",
}
# Controller readings around the fact gathering of the recording above.
CLOCK = {"clock_before": 1795936800.9, "clock_after": 1795936802.4}

UBUNTU2204_VM = dict(
    DEBIAN12_LAB,
    distribution="Ubuntu", distribution_version="22.04", distribution_major_version="22",
    distribution_release="jammy", hostname="gpu-01", fqdn="gpu-01.example.internal",
    processor_nproc=16, processor_vcpus=16, memtotal_mb=128799, swaptotal_mb=0,
    default_ipv4={"address": "10.20.0.31", "interface": "ens5"},
    all_ipv4_addresses=["10.20.0.31", "10.30.0.31"], all_ipv6_addresses=[],
    python={"version": {"major": 3, "minor": 10, "micro": 12}}, python_version="3.10.12",
    virtualization_type="kvm",
)

ROCKY9_VM = dict(
    DEBIAN12_LAB,
    distribution="Rocky", distribution_version="9.4", distribution_major_version="9", os_family="RedHat",
    hostname="cpu-01", processor_nproc=1, processor_vcpus=1, memtotal_mb=1771, swaptotal_mb=2047,
    swapfree_mb=2047, default_ipv4={"address": "10.20.0.21"}, all_ipv4_addresses=["10.20.0.21"],
    python={"version": {"major": 3, "minor": 9, "micro": 18}}, python_version="3.9.18", virtualization_type="kvm",
)

DEBIAN10_OLD = dict(
    DEBIAN12_LAB,
    distribution="Debian", distribution_version="10.13", distribution_major_version="10",
    distribution_release="buster", architecture="armv7l",
    python={"version": {"major": 3, "minor": 7, "micro": 3}}, python_version="3.7.3",
)

CAPS_LAB = {"container": True, "container_type": "podman", "cgroup_version": 1, "cgroup_mode": "hybrid",
            "kernel_modules_loadable": False, "sysctl_writable": False, "swap_active": False,
            "swap_devices": [], "systemd": True, "time_sync": None}
CAPS_VM_SWAP = {"container": False, "container_type": None, "cgroup_version": 2, "cgroup_mode": "unified",
                "kernel_modules_loadable": True, "sysctl_writable": True, "swap_active": True,
                "swap_devices": [{"name": "/dev/vda3", "type": "partition", "size_kib": 2096124,
                                  "used_kib": 0, "priority": -2}],
                "systemd": True, "time_sync": True}

DF_LAB = ("Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
          "overlay          264212084  14963876  80537388      16% /\n")
DF_SMALL = ("Filesystem     1024-blocks    Used Available Capacity Mounted on\n"
            "/dev/mapper/rl-var   8154588 5312644   2405232      69% /var\n")

DEFAULTS = {
    "preflight_supported_os": {"Debian": ["12", "13"], "Ubuntu": ["22.04", "24.04"], "RedHat": ["8", "9"],
                               "Rocky": ["8", "9"], "AlmaLinux": ["8", "9"]},
    "preflight_supported_architectures": ["x86_64", "aarch64"],
    "preflight_min_cpus_control_plane": 2,
    "preflight_min_cpus_worker": 1,
    "preflight_min_memory_mib": 2048,
    "preflight_disk_path": "/var",
    "preflight_min_disk_gib": 20,
    "preflight_allow_cgroup_v1": False,
    "preflight_max_clock_skew_s": 2.0,
    "preflight_min_python_version": "3.8",
    "common_disable_swap": True,
}


def params(**overrides):
    out = dict(DEFAULTS, **CLOCK)
    out.update({"capabilities": CAPS_LAB, "df": {"rc": 0, "stdout": DF_LAB, "stderr": ""},
                "node_ip": "10.89.0.2", "node_ip_set": False, "is_control_plane": True,
                "preflight_allow_cgroup_v1": True})
    out.update(overrides)
    return out


def by_check(records, check, host=None):
    found = [r for r in records if r["check"] == check and (host is None or r["host"] == host)]
    assert found, f"no {check} record in {records}"
    return found


def one(records, check, host=None):
    found = by_check(records, check, host)
    assert len(found) == 1, found
    return found[0]


def errors(records):
    return [r for r in records if not r["ok"] and r["severity"] == "error"]


def assert_record_shape(records):
    keys = {"host", "check", "variable", "value", "expected", "ok", "severity", "message"}
    for r in records:
        assert set(r) == keys, r
        assert r["severity"] in ("error", "warning")
        assert r["message"].startswith(r["host"] + ": "), r


# --- argument specs ---------------------------------------------------------------


def test_load_argument_specs_of_the_collection():
    specs = pf.preflight_load_argument_specs(ROOT / "roles")
    assert "preflight" in specs
    assert specs["preflight"]["preflight_min_memory_mib"]["type"] == "int"
    # options of the inventory entry point are merged into the role's options
    assert "preflight_report_path" in specs["preflight"]


def test_preflight_defaults_match_its_argument_spec():
    import yaml

    options = pf.preflight_load_argument_specs(ROOT / "roles")["preflight"]
    defaults = yaml.safe_load((ROOT / "roles" / "preflight" / "defaults" / "main.yml").read_text())
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name


def test_load_argument_specs_errors(tmp_path):
    with pytest.raises(AnsibleFilterError, match="not a directory"):
        pf.preflight_load_argument_specs(tmp_path / "missing")
    bad = tmp_path / "broken" / "meta"
    bad.mkdir(parents=True)
    (bad / "argument_specs.yml").write_text("---\nfoo: [1\n")
    with pytest.raises(AnsibleFilterError, match="cannot read"):
        pf.preflight_load_argument_specs(tmp_path)
    (bad / "argument_specs.yml").write_text("---\nfoo: 1\n")
    with pytest.raises(AnsibleFilterError, match="no argument_specs"):
        pf.preflight_load_argument_specs(tmp_path)


def test_load_argument_specs_merges_entry_points(tmp_path):
    meta = tmp_path / "demo" / "meta"
    meta.mkdir(parents=True)
    (meta / "argument_specs.yml").write_text(
        "---\nargument_specs:\n  extra:\n    options:\n      demo_b: {type: int}\n"
        "  main:\n    options:\n      demo_a: {type: bool, default: true}\n"
    )
    assert pf.preflight_load_argument_specs(tmp_path) == {
        "demo": {"demo_a": {"type": "bool", "default": True}, "demo_b": {"type": "int"}}}


@pytest.mark.parametrize("value,spec,expected", [
    ("maybe", {"type": "bool"}, ("variable_type", "'maybe' is not a valid bool")),
    ("yes", {"type": "bool"}, None),  # Ansible's own coercion accepts yes/no
    ("lots", {"type": "int"}, ("variable_type", "'lots' is not a valid int")),
    ("4096", {"type": "int"}, None),
    ("soon", {"type": "float"}, ("variable_type", "'soon' is not a valid float")),
    ("pool", {"type": "str", "choices": ["pool", "server"]}, None),
    ("peer", {"type": "str", "choices": ["pool", "server"]},
     ("variable_choice", "'peer' is not one of the allowed values (pool, server)")),
    (["a", 3], {"type": "list", "elements": "int"}, ("variable_type", "[0] 'a' is not a valid int")),
    ({"a": 1}, {"type": "list"}, ("variable_type", "{'a': 1} is not a valid list")),
    (None, {"type": "int"}, None),
])
def test_validate_value(value, spec, expected):
    problems = argspec.validate_value("x", value, spec)
    if expected is None:
        assert problems == []
    else:
        assert problems[0] == expected


def test_validate_value_suboptions_and_constraints():
    spec = {"type": "list", "elements": "dict", "options": {
        "host": {"type": "str", "required": True}, "type": {"type": "str", "choices": ["pool", "server"]}}}
    problems = argspec.validate_value("common_ntp_servers",
                                      [{"host": "a", "type": "peer", "iburst": 1}, {"type": "pool"}], spec)
    texts = [t for _, t in problems]
    assert "[0] has an unknown key iburst" in texts
    assert "[0].type 'peer' is not one of the allowed values (pool, server)" in texts
    assert "[1] is missing the required key host" in texts
    assert argspec.validate_value("s", -1, {"type": "float"}, {"min": 0}) == [
        ("variable_range", "-1 is below the minimum 0")]
    assert argspec.validate_value("ip", "10.1.2", {"type": "str"}, {"format": "ip"})[0][0] == "variable_format"
    assert argspec.validate_value("v", "three", {"type": "str"}, {"format": "version"})[0][0] == "variable_format"
    assert argspec.validate_value("p", "var", {"type": "str"}, {"format": "absolute_path"})[0][0] == "variable_format"


# --- inventory checks -------------------------------------------------------------

SPECS = {
    "common": {
        "common_disable_swap": {"type": "bool", "default": True},
        "common_ntp_mode": {"type": "str", "choices": ["pool", "server"], "default": "pool"},
        "common_extra_packages": {"type": "list", "elements": "str", "default": []},
    },
    "preflight": {
        "preflight_min_memory_mib": {"type": "int", "default": 2048},
        "preflight_max_clock_skew_s": {"type": "float", "default": 2.0},
        "preflight_required_groups": {"type": "list", "elements": "str", "default": ["control_plane"]},
        "preflight_allow_cgroup_v1": {"type": "bool", "default": False},
    },
    # the rules of every role now run with the defaults applied: nvidia_driver's need a branch, and a
    # version (when set) is a full one
    "nvidia_driver": {"nvidia_driver_branch": {"type": "str", "default": "535"},
                      "nvidia_driver_version": {"type": "str", "default": ""}},
    # The cluster-wide gpuforge_* variables are the options of the role cluster_model now (they were the
    # filter's cluster_spec argument): the collection's own, so that the cluster model's rules hold.
    "cluster_model": pf.preflight_load_argument_specs(ROOT / "roles")["cluster_model"],
}
# The constraints are no longer an argument: variable_rules.CONSTRAINTS holds them. These tests rely on
# two of them, as before.
assert vr.CONSTRAINTS["preflight_max_clock_skew_s"]["min"] == 0
assert vr.CONSTRAINTS["gpuforge_node_ip"] == {"format": "ip"}


def lab_inventory():
    """groups and hostvars of a 1 cp + 1 worker + 1 gpu worker lab (as `gpuforge lab up` writes it)."""
    groups = {"all": ["gf-lab-cp1", "gf-lab-w1", "gf-lab-gpu1"], "ungrouped": [],
              "k8s_cluster": ["gf-lab-cp1", "gf-lab-w1", "gf-lab-gpu1"], "control_plane": ["gf-lab-cp1"],
              "workers": ["gf-lab-w1", "gf-lab-gpu1"], "gpu_workers": ["gf-lab-gpu1"]}
    common = {"gpuforge_lab": True, "ansible_connection": "containers.podman.podman",
              "ansible_python_interpreter": "/usr/bin/python3", "preflight_allow_cgroup_v1": True,
              "inventory_dir": "/tmp/lab", "group_names": [], "ansible_facts": {}}
    hostvars = {}
    for index, host in enumerate(groups["all"], start=2):
        hostvars[host] = dict(common, inventory_hostname=host, ansible_host=host,
                              gpuforge_node_ip="10.89.0.%d" % index)
    hostvars["gf-lab-gpu1"]["gpuforge_gpu_simulated"] = True
    return groups, hostvars


def inventory_checks(groups, hostvars, **kwargs):
    kwargs.setdefault("argument_specs", SPECS)
    records = pf.preflight_inventory_checks(groups, hostvars, **kwargs)
    assert_record_shape(records)
    return records


def test_good_lab_inventory_passes():
    records = inventory_checks(*lab_inventory())
    assert errors(records) == []
    checks = {r["check"] for r in records}
    assert {"group_not_empty", "control_plane_odd", "host_in_cluster", "gpu_worker_in_workers", "node_name",
            "ansible_host_unique", "variables"} <= checks
    summary = one(records, "variables", "gf-lab-gpu1")
    assert summary["ok"] and summary["message"] == (
        "gf-lab-gpu1: the role and cluster variables set for this host are valid")
    # The summary record no longer counts the variables it validated (it was 4: gpuforge_lab,
    # gpuforge_gpu_simulated, gpuforge_node_ip, preflight_allow_cgroup_v1). The same four are still
    # validated: a bad value of each one is reported for that host, naming it.
    for name, bad in (("gpuforge_lab", "maybe"), ("gpuforge_gpu_simulated", "maybe"),
                      ("gpuforge_node_ip", "10.89.0.300"), ("preflight_allow_cgroup_v1", "maybe")):
        groups, hostvars = lab_inventory()
        hostvars["gf-lab-gpu1"][name] = bad
        assert [(r["host"], r["variable"]) for r in errors(inventory_checks(groups, hostvars))
                if r["check"].startswith("variable_")] == [("gf-lab-gpu1", name)], name


def test_missing_and_empty_groups():
    groups, hostvars = lab_inventory()
    del groups["control_plane"]
    msgs = [r["message"] for r in errors(inventory_checks(groups, hostvars))]
    assert any("group control_plane is not defined" in m and "preflight_required_groups" in m for m in msgs)

    groups, hostvars = lab_inventory()
    groups["control_plane"] = []
    msgs = [r["message"] for r in errors(inventory_checks(groups, hostvars))]
    assert "inventory: group control_plane has no hosts; preflight_required_groups (control_plane) lists it as " \
           "required" in msgs

    groups, hostvars = lab_inventory()
    del groups["k8s_cluster"]
    msgs = [r["message"] for r in errors(inventory_checks(groups, hostvars))]
    assert any(m.startswith("inventory: group k8s_cluster is not defined") for m in msgs)
    # and every node-group host is reported outside the cluster
    assert "gf-lab-cp1: host is in group control_plane but not in k8s_cluster; make control_plane a child of " \
           "k8s_cluster" in msgs
    assert any(m.startswith("gf-lab-gpu1: host is in group workers, gpu_workers but not in k8s_cluster") for m in msgs)


def test_required_groups_variable():
    groups, hostvars = lab_inventory()
    msgs = [r["message"] for r in errors(inventory_checks(groups, hostvars, required_groups=["control_plane", "etcd"]))]
    assert any("group etcd is not defined" in m for m in msgs)
    msgs = [r["message"] for r in errors(inventory_checks(groups, hostvars, required_groups="control_plane,workers"))]
    assert msgs == []
    msgs = [r["message"] for r in errors(inventory_checks(groups, hostvars, required_groups=5))]
    assert msgs == ["inventory: preflight_required_groups 5 is not a list of group names; checking the default "
                    "(control_plane)"]


def test_even_control_plane():
    groups, hostvars = lab_inventory()
    groups["control_plane"].append("gf-lab-w1")
    rec = one(errors(inventory_checks(groups, hostvars)), "control_plane_odd")
    assert rec["value"] == 2
    assert "group control_plane has 2 hosts (gf-lab-cp1, gf-lab-w1); etcd needs an odd number" in rec["message"]


def test_hosts_outside_the_cluster_and_gpu_workers_outside_workers():
    groups, hostvars = lab_inventory()
    groups["gpu_workers"] = ["gf-lab-gpu1", "stray"]
    hostvars["stray"] = {"ansible_host": "10.0.0.9"}
    records = errors(inventory_checks(groups, hostvars))
    assert one(records, "host_in_cluster", "stray")["message"] == (
        "stray: host is in group gpu_workers but not in k8s_cluster; make gpu_workers a child of k8s_cluster")
    assert one(records, "gpu_worker_in_workers", "stray")["variable"] == "groups['workers']"


@pytest.mark.parametrize("name,reason", [
    ("GF-Lab-W2", "has uppercase letters"),
    ("gf_lab_w2", "has characters other than a-z, 0-9, '-' and '.'"),
    ("-gf-lab", "has a label that does not start and end with a letter or digit"),
    ("a" * 64, "is too long"),
])
def test_invalid_node_names(name, reason):
    groups, hostvars = lab_inventory()
    groups["workers"].append(name)
    groups["k8s_cluster"].append(name)
    hostvars[name] = {"ansible_host": "10.0.0.%d" % len(name)}
    rec = one(errors(inventory_checks(groups, hostvars)), "node_name", name)
    assert rec["variable"] == "inventory_hostname"
    assert reason in rec["message"]
    assert rec["message"].startswith("%s: node name %s (inventory_hostname) is not a valid DNS-1123 name" % (name, name))


def test_node_names_unique_ignoring_case():
    groups, hostvars = lab_inventory()
    groups["workers"].append("GF-LAB-W1")
    groups["k8s_cluster"].append("GF-LAB-W1")
    hostvars["GF-LAB-W1"] = {"ansible_host": "10.0.0.99"}
    recs = by_check(errors(inventory_checks(groups, hostvars)), "node_name_unique")
    assert {r["host"] for r in recs} == {"gf-lab-w1", "GF-LAB-W1"}


def test_duplicate_ansible_host_and_node_ip():
    groups, hostvars = lab_inventory()
    hostvars["gf-lab-gpu1"]["ansible_host"] = "GF-LAB-W1"  # case does not make another machine
    hostvars["gf-lab-gpu1"]["gpuforge_node_ip"] = "10.89.0.3"
    records = errors(inventory_checks(groups, hostvars))
    dup = one(records, "ansible_host_unique", "gf-lab-gpu1")
    assert dup["message"] == ("gf-lab-gpu1: ansible_host gf-lab-w1 is also the address of gf-lab-w1; "
                              "two inventory names for one machine")
    assert one(records, "node_ip_unique", "gf-lab-w1")["message"] == (
        "gf-lab-w1: gpuforge_node_ip 10.89.0.3 is also set for gf-lab-gpu1; every node needs its own IP")


def test_same_address_on_other_ports_is_not_a_duplicate():
    groups, hostvars = lab_inventory()
    for host in ("gf-lab-w1", "gf-lab-gpu1"):
        hostvars[host]["ansible_host"] = "bastion.example"
    hostvars["gf-lab-w1"]["ansible_port"] = 2201
    hostvars["gf-lab-gpu1"]["ansible_port"] = 2202
    assert errors(inventory_checks(groups, hostvars)) == []


def test_variable_types_choices_and_typos():
    groups, hostvars = lab_inventory()
    hostvars["gf-lab-w1"].update({
        "common_disable_swap": "maybe",
        "common_ntp_mode": "peer",
        "common_dissable_swap": True,
        "preflight_min_memory_mib": "lots",
        "preflight_max_clock_skew_s": -1,
        "gpuforge_labb": True,
        "gpuforge_node_ip": "10.89.0.300",
        "nvidia_driver_versoin": "550",
        "common_totally_new": 1,
    })
    records = errors(inventory_checks(groups, hostvars))
    msgs = {r["variable"]: r["message"] for r in records if r["host"] == "gf-lab-w1"}
    assert msgs["common_disable_swap"] == "gf-lab-w1: common_disable_swap 'maybe' is not a valid bool (role common)"
    assert msgs["common_ntp_mode"] == ("gf-lab-w1: common_ntp_mode 'peer' is not one of the allowed values "
                                       "(pool, server) (role common)")
    assert msgs["common_dissable_swap"] == ("gf-lab-w1: common_dissable_swap is not a known variable of role "
                                            "common; did you mean common_disable_swap?")
    assert msgs["preflight_min_memory_mib"] == ("gf-lab-w1: preflight_min_memory_mib 'lots' is not a valid int "
                                                "(role preflight)")
    assert msgs["preflight_max_clock_skew_s"] == ("gf-lab-w1: preflight_max_clock_skew_s -1 is below the minimum 0 "
                                                  "(role preflight)")
    assert msgs["gpuforge_labb"].endswith("is not a known cluster-wide gpuforge_* variable; did you mean gpuforge_lab?")
    assert msgs["gpuforge_node_ip"] == ("gf-lab-w1: gpuforge_node_ip '10.89.0.300' is not an IP address "
                                        "(cluster-wide variable)")
    # the longest role prefix wins: nvidia_driver_*, not a role called nvidia
    assert "did you mean nvidia_driver_version?" in msgs["nvidia_driver_versoin"]
    assert msgs["common_totally_new"].endswith("(check the spelling)")
    # the other hosts are fine, and each host with problems has no summary record
    assert {r["host"] for r in records} == {"gf-lab-w1"}
    assert not [r for r in inventory_checks(groups, hostvars) if r["check"] == "variables" and r["host"] == "gf-lab-w1"]


def test_facts_and_unrelated_variables_are_not_validated():
    groups, hostvars = lab_inventory()
    hostvars["gf-lab-w1"]["gpuforge_node"] = {"container": True}  # a fact of node_capabilities
    hostvars["gf-lab-w1"]["ansible_facts"] = {"gpuforge_node": {"container": True}}
    hostvars["gf-lab-w1"]["commonplace"] = "x"  # no role prefix (common_)
    hostvars["gf-lab-w1"]["__common_internal"] = "x"
    assert errors(inventory_checks(groups, hostvars)) == []


class Exploding(dict):
    """hostvars whose templated value fails, like `"{{ undefined }}"` does."""

    def __getitem__(self, key):
        if key == "common_disable_swap":
            raise RuntimeError("'undefined_thing' is undefined\nmore detail")
        return super().__getitem__(key)


def test_template_errors_are_reported():
    groups, hostvars = lab_inventory()
    hostvars["gf-lab-w1"] = Exploding(hostvars["gf-lab-w1"], common_disable_swap="{{ undefined_thing }}")
    rec = one(errors(inventory_checks(groups, hostvars)), "variable_template")
    assert rec["message"] == "gf-lab-w1: common_disable_swap cannot be evaluated: 'undefined_thing' is undefined"


def test_inventory_checks_reject_unusable_input():
    with pytest.raises(AnsibleFilterError, match="groups must be a dict"):
        pf.preflight_inventory_checks(["a"], {})
    with pytest.raises(AnsibleFilterError, match="hostvars must be a dict"):
        pf.preflight_inventory_checks({}, "x")


# --- host checks ------------------------------------------------------------------


def host_checks(facts, host="gf-lab-cp1", **overrides):
    records = pf.preflight_host_checks(facts, host, params(**overrides))
    assert_record_shape(records)
    return records


def test_lab_host_passes_every_check():
    records = host_checks(DEBIAN12_LAB)
    assert [r for r in records if not r["ok"]] == []
    assert [r["check"] for r in records] == ["os", "architecture", "cpus", "memory", "disk", "swap", "cgroup",
                                             "clock", "time_sync", "python", "node_ip"]
    assert one(records, "disk")["message"] == (
        "gf-lab-cp1: 76.8 GiB free on / (preflight_disk_path /var) meets preflight_min_disk_gib (20)")
    assert one(records, "cgroup")["message"].endswith("accepted because preflight_allow_cgroup_v1 is true (labs only)")


def test_supported_os_versions():
    assert one(host_checks(UBUNTU2204_VM, capabilities=CAPS_VM_SWAP), "os")["ok"]
    assert one(host_checks(ROCKY9_VM, capabilities=CAPS_VM_SWAP), "os")["ok"]
    rec = one(host_checks(DEBIAN10_OLD, host="gf-lab-w1"), "os")
    assert not rec["ok"]
    assert rec["message"].startswith("gf-lab-w1: operating system Debian 10.13 is not in preflight_supported_os "
                                     "(Debian 12, 13; Ubuntu 22.04, 24.04;")


def test_architecture_and_python():
    records = host_checks(DEBIAN10_OLD, host="gf-lab-w1")
    assert one(records, "architecture")["message"] == (
        "gf-lab-w1: architecture armv7l is not in preflight_supported_architectures (x86_64, aarch64)")
    assert one(records, "python")["message"] == (
        "gf-lab-w1: Python 3.7.3 is older than preflight_min_python_version (3.8)")


def test_cpu_minimum_depends_on_the_node_role():
    rocky = dict(ROCKY9_VM)
    cp = one(host_checks(rocky, host="cpu-01", capabilities=CAPS_VM_SWAP), "cpus")
    assert cp["message"] == "cpu-01: 1 CPUs is below preflight_min_cpus_control_plane (2)"
    worker = one(host_checks(rocky, host="cpu-01", capabilities=CAPS_VM_SWAP, is_control_plane=False), "cpus")
    assert worker["ok"] and worker["variable"] == "preflight_min_cpus_worker"


def test_memory_below_minimum():
    rec = one(host_checks(dict(DEBIAN12_LAB, memtotal_mb=1024), host="gf-lab-w1"), "memory")
    assert rec["message"] == "gf-lab-w1: memory 1024 MiB is below preflight_min_memory_mib (2048)"
    assert rec["value"] == 1024 and rec["severity"] == "error"


def test_disk():
    rec = one(host_checks(ROCKY9_VM, host="cpu-01", capabilities=CAPS_VM_SWAP,
                          df={"rc": 0, "stdout": DF_SMALL, "stderr": ""}), "disk")
    assert rec["message"] == ("cpu-01: 2.3 GiB free on /var (preflight_disk_path /var) is below "
                              "preflight_min_disk_gib (20)")
    missing = one(host_checks(DEBIAN12_LAB, preflight_disk_path="/data", df={
        "rc": 1, "stdout": "", "stderr": "df: /data: No such file or directory\n"}), "disk")
    assert missing["message"] == "gf-lab-cp1: preflight_disk_path /data cannot be measured: df: /data: No such file or directory"
    assert not missing["ok"]
    unmeasured = one(host_checks(DEBIAN12_LAB, df=None), "disk")
    assert unmeasured["severity"] == "warning"


def test_parse_df_with_spaces_in_the_mount_point():
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sdb1 1000 10 990 1% /mnt/my disk\n"
    assert preflight_hosts.parse_df(out) == (990, "/mnt/my disk")
    assert preflight_hosts.parse_df("") is None
    assert preflight_hosts.parse_df("header only\n") is None


def test_swap():
    caps = dict(CAPS_VM_SWAP)
    on = one(host_checks(ROCKY9_VM, host="cpu-01", capabilities=caps, common_disable_swap=False), "swap")
    assert on["message"].startswith("cpu-01: swap is active (/dev/vda3) while common_disable_swap is false")
    assert not on["ok"] and on["variable"] == "common_disable_swap"
    assert one(host_checks(ROCKY9_VM, host="cpu-01", capabilities=caps), "swap")["ok"]
    # "false" as a string (extra vars) counts as false, like Ansible's own coercion
    assert not one(host_checks(ROCKY9_VM, capabilities=caps, common_disable_swap="false"), "swap")["ok"]
    # without gpuforge_node the facts tell
    assert not one(host_checks(ROCKY9_VM, capabilities={}, common_disable_swap=False), "swap")["ok"]
    # a container cannot switch the machine's swap off: a warning
    lab_swap = dict(CAPS_LAB, swap_active=True, swap_devices=[{"name": "/swapfile"}])
    rec = one(host_checks(DEBIAN12_LAB, capabilities=lab_swap), "swap")
    assert rec["severity"] == "warning" and not rec["ok"]


def test_cgroup():
    rec = one(host_checks(DEBIAN12_LAB, preflight_allow_cgroup_v1=False), "cgroup")
    assert rec["message"].startswith("gf-lab-cp1: cgroup v1 (hybrid) is in use and preflight_allow_cgroup_v1 is "
                                     "false; Kubernetes needs cgroup v2")
    assert one(host_checks(UBUNTU2204_VM, capabilities=CAPS_VM_SWAP, preflight_allow_cgroup_v1=False), "cgroup")["ok"]
    unknown = one(host_checks(DEBIAN12_LAB, capabilities={}), "cgroup")
    assert unknown["severity"] == "warning" and not unknown["ok"]


def test_clock_skew():
    host_time = preflight_hosts.fact_time(DEBIAN12_LAB)
    assert host_time == pytest.approx(1795936801.968359)
    assert one(host_checks(DEBIAN12_LAB), "clock")["value"] == 0
    ahead = one(host_checks(DEBIAN12_LAB, clock_before=host_time - 40.5, clock_after=host_time - 40.0), "clock")
    assert ahead["message"] == ("gf-lab-cp1: clock is 40 s ahead of the controller, more than "
                                "preflight_max_clock_skew_s (2)")
    behind = one(host_checks(DEBIAN12_LAB, clock_before=host_time + 3.0, clock_after=host_time + 3.5), "clock")
    assert not behind["ok"] and "3 s behind the controller" in behind["message"]
    assert one(host_checks(DEBIAN12_LAB, clock_before=host_time + 1.5, clock_after=host_time + 2), "clock")["ok"]
    # epoch only (older facts): rounded to the middle of the second
    epoch_only = dict(DEBIAN12_LAB, date_time={"epoch": "1795936801"})
    assert preflight_hosts.fact_time(epoch_only) == 1795936801.5
    assert one(host_checks(epoch_only, clock_before=None), "clock")["severity"] == "warning"


def test_time_sync_warning_on_real_hosts_only():
    caps = dict(CAPS_VM_SWAP, time_sync=False)
    rec = one(host_checks(UBUNTU2204_VM, capabilities=caps), "time_sync")
    assert rec["severity"] == "warning" and not rec["ok"]
    assert one(host_checks(DEBIAN12_LAB), "time_sync")["ok"]


def test_invalid_parameters_skip_their_check():
    records = host_checks(DEBIAN12_LAB, preflight_min_memory_mib="lots", preflight_max_clock_skew_s=-1)
    params_records = by_check(records, preflight_report.PARAMETER_CHECK)
    assert {r["variable"] for r in params_records} == {"preflight_min_memory_mib", "preflight_max_clock_skew_s"}
    assert "preflight_min_memory_mib 'lots' is not a valid int; the memory check cannot run" in params_records[0]["message"]
    assert not [r for r in records if r["check"] in ("memory", "clock")]


def test_node_ip():
    rec = one(host_checks(UBUNTU2204_VM, host="gpu-01", capabilities=CAPS_VM_SWAP, node_ip="10.30.0.31",
                          node_ip_set=True), "node_ip")
    assert rec["ok"]
    rec = one(host_checks(DEBIAN12_LAB, node_ip="10.30.0.99", node_ip_set=True), "node_ip")
    assert rec["message"] == ("gf-lab-cp1: gpuforge_node_ip 10.30.0.99 is not an address of this host "
                              "(it has 10.89.0.2, fe80::1cdb:dff:fee1:eea2)")
    assert not one(host_checks(DEBIAN12_LAB, node_ip=""), "node_ip")["ok"]


def test_unreachable_host():
    records = host_checks({}, host="gf-lab-w9", unreachable="Failed to connect to the host via podman\nmore")
    assert records == [preflight_report.record("gf-lab-w9", "reachable", "ansible_host", None, "reachable", False,
                                 "host is unreachable or its facts could not be gathered: "
                                 "Failed to connect to the host via podman")]


def test_host_checks_reject_unusable_input():
    with pytest.raises(AnsibleFilterError, match="has no gathered facts"):
        pf.preflight_host_checks({}, "h", params())
    with pytest.raises(AnsibleFilterError, match="facts must be a dict"):
        pf.preflight_host_checks("x", "h", params())
    with pytest.raises(AnsibleFilterError, match="capabilities of h must be a dict"):
        pf.preflight_host_checks(DEBIAN12_LAB, "h", params(capabilities=["x"]))


# --- cross-host checks and report -------------------------------------------------


def test_cross_host_checks():
    records = pf.preflight_cross_host_checks({
        "gf-lab-cp1": {"hostname": "gf-lab-cp1", "node_ip": "10.89.0.2"},
        "gf-lab-w1": {"hostname": "GF-LAB-CP1", "node_ip": "10.89.0.3"},
        "gf-lab-w2": {"hostname": "gf-lab-w2", "node_ip": "10.89.0.3"},
        "gone": {},
    })
    assert_record_shape(records)
    bad = errors(records)
    assert {(r["host"], r["check"]) for r in bad} == {
        ("gf-lab-cp1", "hostname_unique"), ("gf-lab-w1", "hostname_unique"),
        ("gf-lab-w1", "node_ip_unique"), ("gf-lab-w2", "node_ip_unique")}
    assert one(bad, "node_ip_unique", "gf-lab-w2")["message"] == (
        "gf-lab-w2: node IP 10.89.0.3 is also the node IP of gf-lab-w1; every node needs its own")
    with pytest.raises(AnsibleFilterError):
        pf.preflight_cross_host_checks({"a": "b"})


def test_report_aggregates_everything_at_once():
    groups, hostvars = lab_inventory()
    hostvars["gf-lab-w1"]["preflight_min_memory_mib"] = "lots"
    hostvars["gf-lab-gpu1"]["common_disable_swap"] = "maybe"
    checks = inventory_checks(groups, hostvars)
    checks += host_checks(DEBIAN12_LAB, host="gf-lab-cp1", preflight_min_memory_mib=999999)
    checks += host_checks(dict(DEBIAN12_LAB, hostname="gf-lab-w1"), host="gf-lab-w1",
                          preflight_min_memory_mib="lots", is_control_plane=False)
    checks += pf.preflight_cross_host_checks({"gf-lab-cp1": {"hostname": "gf-lab-cp1"},
                                              "gf-lab-w1": {"hostname": "gf-lab-w1"}})
    report = pf.preflight_report(checks, hosts=["gf-lab-cp1", "gf-lab-w1", "gf-lab-gpu1"],
                                 active_hosts=["gf-lab-cp1", "gf-lab-w1"], path="/tmp/r.json",
                                 generated_at="2026-11-29T07:20:01Z")
    assert not report["ok"]
    assert report["errors"] == [
        "gf-lab-w1: preflight_min_memory_mib 'lots' is not a valid int (role preflight)",
        "gf-lab-gpu1: common_disable_swap 'maybe' is not a valid bool (role common)",
        "gf-lab-cp1: memory 24105 MiB is below preflight_min_memory_mib (999999)",
        "gf-lab-gpu1: host dropped out of the play (failed or unreachable) before its checks ran",
    ]
    assert report["summary"]["failed_hosts"] == ["gf-lab-cp1", "gf-lab-gpu1", "gf-lab-w1"]
    assert report["failure_message"].startswith(
        "Preflight found 4 error(s) in hosts gf-lab-cp1, gf-lab-gpu1, gf-lab-w1; nothing was changed "
        "(report: /tmp/r.json):\n- gf-lab-w1: preflight_min_memory_mib")
    # the invalid parameter of the memory check is not reported twice
    assert not [c for c in report["checks"] if c["check"] == preflight_report.PARAMETER_CHECK]
    assert report["hosts"]["gf-lab-w1"]["errors"] == 1


def test_report_groups_the_same_problem_of_several_hosts():
    checks = [preflight_report.record(h, "variable_type", "common_disable_swap", "maybe", "bool", False,
                        "common_disable_swap 'maybe' is not a valid bool (role common)") for h in ("a", "b")]
    checks.append(preflight_report.record("inventory", "control_plane_odd", "groups['control_plane']", 2, "odd", False, "even"))
    report = pf.preflight_report(checks, hosts=["a", "b"])
    assert report["failure_message"].splitlines()[1:] == [
        "- a, b: common_disable_swap 'maybe' is not a valid bool (role common)", "- inventory: even"]
    assert "in the inventory and hosts a, b;" in report["failure_message"]


def test_report_ok_and_warnings():
    records = host_checks(DEBIAN12_LAB, df=None)
    report = pf.preflight_report(records, hosts=["gf-lab-cp1"], active_hosts=["gf-lab-cp1"])
    assert report["ok"] and report["failure_message"] == ""
    assert report["warnings"] == ["gf-lab-cp1: free space on preflight_disk_path /var was not measured"]
    with pytest.raises(AnsibleFilterError, match="without 'ok'"):
        pf.preflight_report([{"host": "a", "check": "x", "severity": "error", "message": "a: m"}])


def test_record_validation_and_plain_values():
    # record() is module_utils now (no filter): it raises PreflightError, which the filters turn into
    # AnsibleFilterError
    with pytest.raises(PreflightError, match="severity"):
        preflight_report.record("h", "c", "v", 1, 1, True, "m", severity="info")
    rec = preflight_report.record("h", "c", "v", (1, {"a": {2}}), None, 1, "h: already prefixed")
    assert rec["value"] == [1, {"a": [2]}] and rec["ok"] is True and rec["message"] == "h: already prefixed"


def test_filter_module_exports():
    names = set(pf.FilterModule().filters())
    # preflight_identity is new: what the checks across hosts need of one host's facts
    assert names == {"preflight_load_argument_specs", "preflight_inventory_checks", "preflight_host_checks",
                     "preflight_identity", "preflight_cross_host_checks", "preflight_report"}


def test_inputs_are_not_modified():
    groups, hostvars = lab_inventory()
    before = copy.deepcopy((groups, hostvars))
    inventory_checks(groups, hostvars)
    assert (groups, hostvars) == before


# --- GPU checks (the driver the nvidia_driver role would install, against the GPUs) ---


def gpu_result(fixtures_name):
    """nvidia_gpu_facts' result for a host simulated from a real capture."""
    from ansible_collections.gpuforge.cluster.plugins.module_utils import nvidia_smi
    from gpuforge.shared_inputs import nvidia_smi_fixtures

    inv = nvidia_smi.parse_smi_xml((nvidia_smi_fixtures() / fixtures_name).read_text())
    return {"ansible_facts": {"nvidia": dict(inv, present=True, driver_loaded=True)}}


A100 = "telegraf__a100-sxm4-v12.xml"
K80 = "pai__nvidia_smi_out_of_order.xml"
NO_GPU = {"ansible_facts": {"nvidia": {"present": False, "gpu_count": 0, "gpus": []}}}
DRIVER = {"nvidia_driver_branch": "535", "nvidia_driver_version": "", "nvidia_driver_kernel_modules": "proprietary"}


def test_gpu_host_with_a_suitable_driver():
    records = host_checks(DEBIAN12_LAB, "gf-lab-gpu1", gpu=gpu_result(A100), is_gpu_worker=True, **DRIVER)
    assert [r for r in records if not r["ok"]] == []
    assert one(records, "gpu_present")["message"] == "gf-lab-gpu1: 1 NVIDIA GPU(s): NVIDIA A100-SXM4-80GB"
    assert one(records, "gpu_driver")["message"] == (
        "gf-lab-gpu1: driver 535 (proprietary kernel modules) suits the GPUs")


def test_driver_too_old_for_the_gpu_is_an_error_naming_the_variable():
    records = host_checks(DEBIAN12_LAB, "gf-lab-gpu1", gpu=gpu_result(A100), is_gpu_worker=True,
                          **dict(DRIVER, nvidia_driver_branch="390"))
    bad = one(errors(records), "gpu_driver")
    assert bad["variable"] == "nvidia_driver_branch" and bad["value"] == "390"
    assert bad["message"].startswith("gf-lab-gpu1: nvidia_driver_branch 390 with proprietary kernel modules")
    assert "NVIDIA A100-SXM4-80GB" in bad["message"] and "450.36.06" in bad["message"]


def test_kepler_needs_a_legacy_driver_and_open_modules_need_turing():
    records = host_checks(DEBIAN12_LAB, "gpu9", gpu=gpu_result(K80), is_gpu_worker=True, **DRIVER)
    assert "Tesla K80" in one(errors(records), "gpu_driver")["message"]
    records = host_checks(DEBIAN12_LAB, "gpu9", gpu=gpu_result(K80), is_gpu_worker=True,
                          **dict(DRIVER, nvidia_driver_branch="470", nvidia_driver_kernel_modules="open"))
    assert "open kernel modules" in one(errors(records), "gpu_driver")["message"]


def test_exact_version_wins_and_a_bad_one_is_named():
    records = host_checks(DEBIAN12_LAB, "gpu1", gpu=gpu_result(A100), **dict(DRIVER, nvidia_driver_version="banana"))
    bad = one(errors(records), "gpu_driver")
    assert bad["variable"] == "nvidia_driver_version"
    assert bad["message"].startswith("gpu1: nvidia_driver_version 'banana': ")


def test_gpu_worker_without_a_device_is_a_warning_and_cpu_hosts_have_no_gpu_check():
    records = host_checks(DEBIAN12_LAB, "w1", gpu=NO_GPU, is_gpu_worker=True, **DRIVER)
    warning = one(records, "gpu_present")
    assert (warning["ok"], warning["severity"]) == (False, "warning")
    assert "in group gpu_workers but has no NVIDIA PCI device" in warning["message"]
    assert errors(records) == []
    assert not [r for r in host_checks(DEBIAN12_LAB, "cp1", gpu=NO_GPU, **DRIVER) if r["check"].startswith("gpu")]


def test_gpu_facts_failure_is_reported():
    failed = {"failed": True, "msg": "simulated_smi_xml: /nope.xml does not exist on this host"}
    bad = one(errors(host_checks(DEBIAN12_LAB, "gpu1", gpu=failed, **DRIVER)), "gpu_facts")
    assert bad["variable"] == "gpuforge_gpu_simulated_smi_xml"
    assert bad["message"] == ("gpu1: the NVIDIA GPU facts could not be gathered: "
                              "simulated_smi_xml: /nope.xml does not exist on this host")
