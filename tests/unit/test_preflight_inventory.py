"""Preflight's inventory stage (plugins/module_utils/preflight_inventory.py, through the filter
preflight_inventory_checks): what it finds in an inventory before any host is contacted. The inventories
are shaped like inventories/example, resolved as Ansible would (group_vars/k8s_cluster on every host, then
host_vars), with the collection's own argument specs; the last tests run ansible-playbook on inventory
files written to tmp_path, so that hostvars are Ansible's own (lazy templating, duplicate keys, where a
value was set)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf
from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, inventory
from ansible_collections.gpuforge.cluster.plugins.module_utils import preflight_inventory as pi

from conftest import ROOT

SPECS = argspec.load_argument_specs(ROOT / "roles")
HOSTS = ["cp-01", "cpu-01", "gpu-01"]
ADDRESSES = {"cp-01": "10.20.0.11", "cpu-01": "10.20.0.21", "gpu-01": "10.20.0.31"}
# inventories/example's group_vars/k8s_cluster names the CNI bundle (the cni role's rule needs it)
K8S_CLUSTER = {"cni_bundle_dir": "/srv/gpuforge/cni"}


def site(k8s_cluster=None, host_vars=None, groups_extra=None):
    groups = {"all": list(HOSTS), "ungrouped": [], "k8s_cluster": list(HOSTS), "control_plane": ["cp-01"],
              "workers": ["cpu-01", "gpu-01"], "gpu_workers": ["gpu-01"]}
    groups.update(groups_extra or {})
    hostvars = {}
    for host in HOSTS:
        hostvars[host] = {"inventory_hostname": host, "inventory_dir": "/srv/site", "ansible_host": ADDRESSES[host],
                          "group_names": sorted(g for g in ("k8s_cluster", "control_plane", "workers", "gpu_workers")
                                                if host in groups.get(g, [])), "ansible_facts": {}}
        hostvars[host].update(K8S_CLUSTER)
        hostvars[host].update(k8s_cluster or {})
        hostvars[host].update((host_vars or {}).get(host, {}))
    return groups, hostvars


def checks(groups, hostvars, specs=None, **kwargs):
    records = pf.preflight_inventory_checks(groups, hostvars, specs or SPECS, **kwargs)
    for r in records:
        assert r["message"].startswith(r["host"] + ": "), r
    return records


def failed(records):
    return [r for r in records if not r["ok"]]


def summary(records):
    return [(r["host"], r["check"], r["variable"]) for r in failed(records)]


def messages(records):
    return [r["message"] for r in failed(records)]


def test_a_good_site_passes():
    records = checks(*site())
    assert failed(records) == []
    assert [r["host"] for r in records if r["check"] == "variables"] == HOSTS


# --- renamed and misspelt variables -----------------------------------------------------------


def test_renamed_variables_name_their_replacement():
    groups, hostvars = site(host_vars={"cp-01": {"kubernetes_control_plane_version": "1.37.2",
                                                 "kubernetes_node_ip": "10.20.0.11",
                                                 "cni_kubeconfig": "/etc/kubernetes/admin.conf",
                                                 "kubernetes_upgrade_drain_timeout": 600}})
    records = checks(groups, hostvars)
    assert sorted(summary(records)) == [("cp-01", "variable_renamed", v) for v in (
        "cni_kubeconfig", "kubernetes_control_plane_version", "kubernetes_node_ip", "kubernetes_upgrade_drain_timeout")]
    renamed = {r["variable"]: r for r in failed(records)}
    assert renamed["kubernetes_control_plane_version"]["expected"] == "gpuforge_kubernetes_version"
    assert renamed["kubernetes_control_plane_version"]["message"] == (
        "cp-01: kubernetes_control_plane_version is no longer a variable: it was replaced by "
        "gpuforge_kubernetes_version (the cluster model: set it once, in group_vars/k8s_cluster)")
    # a per-host one may be set per host
    assert renamed["kubernetes_node_ip"]["message"] == (
        "cp-01: kubernetes_node_ip is no longer a variable: it was replaced by gpuforge_node_ip (the cluster model: "
        "set it once, in group_vars/k8s_cluster or per host)")
    # one that moved to another role
    assert "it was replaced by kubernetes_drain_timeout" in renamed["kubernetes_upgrade_drain_timeout"]["message"]


def test_a_removed_variable_is_named_as_removed():
    # containerd_refresh_nvidia_dropin went with the toolkit include (cluster.RENAMED: removed, no new name)
    groups, hostvars = site(host_vars={"cp-01": {"containerd_refresh_nvidia_dropin": False}})
    assert messages(checks(groups, hostvars)) == [
        "cp-01: containerd_refresh_nvidia_dropin is no longer a variable: it was removed (docs/development.md, the "
        "cluster model); delete it"]
    # a name some role still defines (a removed one that came back) is that role's variable
    specs = {role: dict(options) for role, options in SPECS.items()}
    specs["containerd"]["containerd_refresh_nvidia_dropin"] = {"type": "bool", "default": True, "description": "x"}
    assert failed(checks(groups, hostvars, specs)) == []
    without = {role: options for role, options in SPECS.items() if role != "containerd"}
    assert messages(checks(groups, hostvars, without)) == [
        "cp-01: containerd_refresh_nvidia_dropin is no longer a variable: it was removed (docs/development.md, the "
        "cluster model); delete it"]


def test_a_misspelt_renamed_variable_gets_the_new_name():
    groups, hostvars = site(host_vars={"cpu-01": {"kubernetes_control_plane_versoin": "1.37.2"}})
    assert messages(checks(groups, hostvars)) == [
        "cpu-01: kubernetes_control_plane_versoin is not a known variable of role kubernetes_control_plane; did you "
        "mean gpuforge_kubernetes_version?"]


@pytest.mark.parametrize("name, meant", [
    ("comon_disable_swap", "common_disable_swap"),
    ("kubernets_control_plane_kube_vip_image", "kubernetes_control_plane_kube_vip_image"),
    ("nvidia_drivr_branch", "nvidia_driver_branch"),
])
def test_a_misspelt_role_prefix_gets_a_suggestion(name, meant):
    groups, hostvars = site(host_vars={"cpu-01": {name: "x"}})
    records = checks(groups, hostvars)
    assert summary(records) == [("cpu-01", "variable_unknown", name)]
    assert failed(records)[0]["message"] == (
        "cpu-01: %s is not a variable of any role; did you mean %s? (a misspelt variable is ignored silently)"
        % (name, meant))


def test_site_variables_without_a_known_prefix_are_left_alone():
    groups, hostvars = site(host_vars={"cpu-01": {"site_datacenter": "fra1", "ntp_pool": "pool.ntp.org",
                                                  "ansible_user": "ops", "ansible_become": True}})
    assert failed(checks(groups, hostvars)) == []


# --- groups and hosts -------------------------------------------------------------------------


def test_a_group_one_letter_off():
    groups, hostvars = site()
    groups["gpu_worker"] = groups.pop("gpu_workers")
    records = checks(groups, hostvars)
    assert summary(records) == [("inventory", "group_name", "groups['gpu_worker']")]
    assert failed(records)[0]["message"] == (
        "inventory: group gpu_worker is not a group gpuforge knows; did you mean gpu_workers? (its hosts gpu-01 are "
        "not in gpu_workers, so the roles of gpu_workers skip them)")


def test_a_required_group_misspelt():
    groups, hostvars = site()
    groups["control_plan"] = groups.pop("control_plane")
    records = checks(groups, hostvars)
    assert ("inventory", "group_defined", "preflight_required_groups") in summary(records)
    assert ("inventory", "group_name", "groups['control_plan']") in summary(records)
    defined = [r for r in failed(records) if r["check"] == "group_defined"][0]
    assert defined["message"] == (
        "inventory: group control_plane is not defined (the inventory has control_plan: a typo?); "
        "preflight_required_groups (control_plane) lists it as required")


def test_required_groups_from_the_inventory():
    groups, hostvars = site(k8s_cluster={"preflight_required_groups": ["control_plane", "etcd"]})
    assert messages(checks(groups, hostvars)) == [
        "inventory: group etcd is not defined; preflight_required_groups (control_plane, etcd) lists it as required"]


@pytest.mark.parametrize("address, why", [
    ("", "ansible_host '' is empty"),
    ("   ", "ansible_host '   ' is empty"),
    ("gpü-01", "ansible_host 'gpü-01' is not an IP address or a host name (it has 'ü' (U+00FC))"),
    ("gpu 01", "ansible_host 'gpu 01' is not an IP address or a host name"),
])
def test_an_unusable_ansible_host(address, why):
    groups, hostvars = site(host_vars={"gpu-01": {"ansible_host": address}})
    records = checks(groups, hostvars)
    assert summary(records) == [("gpu-01", "ansible_host", "ansible_host")]
    assert failed(records)[0]["message"] == (
        "gpu-01: %s: set it to the host's IP address or DNS name (or remove it to use the inventory name)" % why)
    assert failed(records)[0]["value"] == address


def test_ansible_host_may_be_a_name_or_absent():
    groups, hostvars = site(host_vars={"gpu-01": {"ansible_host": "gf-lab-gpu1"}})
    del hostvars["cpu-01"]["ansible_host"]
    assert failed(checks(groups, hostvars)) == []


def test_node_names_from_the_model():
    # gpuforge_node_name: the node name judged is the override, and two hosts may not share one
    groups, hostvars = site(host_vars={"gpu-01": {"gpuforge_node_name": "cpu-01"}})
    records = checks(groups, hostvars)
    assert sorted(summary(records)) == [("cpu-01", "node_name_unique", "inventory_hostname"),
                                        ("gpu-01", "node_name_unique", "gpuforge_node_name")]
    groups, hostvars = site(host_vars={"gpu-01": {"gpuforge_node_name": "gpu-a100-01"}})
    records = checks(groups, hostvars)
    assert failed(records) == []
    name = [r for r in records if r["check"] == "node_name" and r["host"] == "gpu-01"][0]
    assert (name["variable"], name["value"], name["message"]) == (
        "gpuforge_node_name", "gpu-a100-01", "gpu-01: node name gpu-a100-01 is a valid DNS-1123 name")


# --- values -----------------------------------------------------------------------------------


def test_negative_and_absurd_values():
    groups, hostvars = site(host_vars={"cpu-01": {"preflight_min_memory_mib": -5, "preflight_min_disk_gib": 10 ** 9},
                                       "gpu-01": {"gpuforge_cluster_name": "a" * 100}})
    records = checks(groups, hostvars)
    assert sorted(summary(records)) == [("cpu-01", "variable_range", "preflight_min_disk_gib"),
                                        ("cpu-01", "variable_range", "preflight_min_memory_mib"),
                                        ("gpu-01", "variable_range", "gpuforge_cluster_name")]
    msgs = {r["variable"]: r["message"] for r in failed(records)}
    assert msgs["preflight_min_memory_mib"] == "cpu-01: preflight_min_memory_mib -5 is below the minimum 0 (role preflight)"
    assert msgs["preflight_min_disk_gib"] == ("cpu-01: preflight_min_disk_gib 1000000000 is above the maximum 1048576 "
                                              "(role preflight)")
    assert msgs["gpuforge_cluster_name"] == ("gpu-01: gpuforge_cluster_name is 100 characters long, more than the 63 "
                                             "allowed (cluster-wide variable)")


def test_zero_is_shown_as_zero():
    groups, hostvars = site(host_vars={"cpu-01": {"kubernetes_drain_timeout": 0, "preflight_min_disk_gib": 0}})
    records = checks(groups, hostvars)
    rec, = failed(records)  # a minimum disk of 0 is fine
    assert (rec["variable"], rec["value"]) == ("kubernetes_drain_timeout", 0)
    assert rec["message"] == "cpu-01: kubernetes_drain_timeout 0 is below the minimum 1 (role kubernetes_drain)"


def test_a_version_written_as_a_word():
    groups, hostvars = site(k8s_cluster={"gpuforge_kubernetes_version": "latest"})
    records = checks(groups, hostvars)
    assert summary(records) == [(h, "variable_rule", "gpuforge_kubernetes_version") for h in HOSTS]
    assert failed(records)[0]["message"] == (
        "cp-01: gpuforge_kubernetes_version 'latest' is not a release such as '1.37.2' (X.Y.Z, no 'v') "
        "(cluster-wide variables)")


def test_a_version_written_as_a_yaml_number():
    # gpuforge_kubernetes_version: 1.30 (unquoted) is the float 1.3
    groups, hostvars = site(k8s_cluster={"gpuforge_kubernetes_version": 1.3})
    records = checks(groups, hostvars)
    assert summary(records) == [(h, "variable_type", "gpuforge_kubernetes_version") for h in HOSTS]
    assert failed(records)[0]["message"] == (
        'cp-01: gpuforge_kubernetes_version 1.3 is a number, not text (YAML read it as the number 1.3: quote it, '
        '"1.3", so that it stays text) (cluster-wide variable)')


def test_pod_and_service_subnets_of_two_ip_families():
    groups, hostvars = site(k8s_cluster={"gpuforge_service_subnet": "fd00:10:96::/112"})
    records = checks(groups, hostvars)
    assert summary(records) == [(h, "variable_rule", "gpuforge_service_subnet") for h in HOSTS]
    assert failed(records)[0]["message"] == (
        "cp-01: gpuforge_service_subnet fd00:10:96::/112 is IPv6 but gpuforge_pod_subnet 10.244.0.0/16 is IPv4: "
        "both must be of one IP family (dual-stack is not supported) (cluster-wide variables)")


@pytest.mark.parametrize("pod, service, why", [
    ("10.244.0.0/25", "10.96.0.0/12", "'10.244.0.0/25' is a /25: the pod network must be between a /8 and a /24"),
    ("fd00:10:244::/56", "fd00:10:96::/112", "'fd00:10:244::/56' is not an IPv4 network (the CNI sets up one IPv4 "
                                             "pod network)"),
])
def test_a_pod_subnet_the_cni_would_refuse(pod, service, why):
    groups, hostvars = site(k8s_cluster={"gpuforge_pod_subnet": pod, "gpuforge_service_subnet": service})
    records = checks(groups, hostvars)
    assert summary(records) == [(h, "variable_rule", "gpuforge_pod_subnet") for h in HOSTS]
    message = failed(records)[0]["message"]
    assert message.startswith("cp-01: gpuforge_pod_subnet %s" % why)
    assert message.endswith("the cni role (cni_plugin calico) would refuse it after kubeadm init built the cluster "
                            "(cluster-wide variables)")


class Exploding(dict):
    """hostvars whose templated value fails, as ansible-core before 2.19 raised for `"{{ undefined }}"`."""

    def __getitem__(self, key):
        if key == "gpuforge_control_plane_endpoint":
            raise RuntimeError("'lb_address' is undefined\nmore detail")
        return super().__getitem__(key)


def test_an_undefined_variable_in_a_value_names_host_and_variable():
    groups, hostvars = site()
    hostvars["cpu-01"] = Exploding(hostvars["cpu-01"], gpuforge_control_plane_endpoint="{{ lb_address }}:6443")
    records = checks(groups, hostvars)
    assert summary(records) == [("cpu-01", "variable_template", "gpuforge_control_plane_endpoint")]
    assert failed(records)[0]["message"] == (
        "cpu-01: gpuforge_control_plane_endpoint cannot be evaluated: 'lb_address' is undefined")


def test_an_undefined_marker_is_an_error_too():
    # ansible-core 2.19 returns a marker (a jinja2.Undefined) instead of raising; inside a list too
    from jinja2 import Undefined

    groups, hostvars = site(host_vars={
        "cpu-01": {"gpuforge_control_plane_endpoint": Undefined(name="lb_address")},
        "gpu-01": {"common_ntp_servers": [{"host": Undefined(name="ntp_host")}]}})
    records = checks(groups, hostvars)
    assert summary(records) == [("cpu-01", "variable_template", "gpuforge_control_plane_endpoint"),
                                ("gpu-01", "variable_template", "common_ntp_servers")]
    assert messages(records) == ["cpu-01: gpuforge_control_plane_endpoint cannot be evaluated: 'lb_address' is undefined",
                                 "gpu-01: common_ntp_servers cannot be evaluated: 'ntp_host' is undefined"]
    assert inventory.undefined_message({"a": [1, {"b": "x"}]}) is None


# --- the inventory's files --------------------------------------------------------------------


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_duplicate_keys_in_the_inventory_files(tmp_path):
    hosts = write(tmp_path / "hosts.yml", "---\nall:\n  children:\n    k8s_cluster:\n      hosts:\n        cp-01:\n"
                                          "        cp-01:\n")
    write(tmp_path / "group_vars" / "k8s_cluster.yml", "---\ngpuforge_cluster_name: lab\ncni_bundle_dir: /srv/cni\n"
                                                       "gpuforge_cluster_name: prod\n")
    write(tmp_path / "group_vars" / "gpu_workers" / "gpu.yml", "---\nnvidia_driver_branch: '580'\n"
                                                                "nvidia_driver_branch: '570'\n")
    write(tmp_path / "host_vars" / "gpu-01.yaml", "---\ngpuforge_node_ip: 10.30.0.31\n")
    groups, hostvars = site()
    records = checks(groups, hostvars, sources=[str(hosts)])
    dups = [r for r in failed(records) if r["check"] == "inventory_file"]
    assert [(r["host"], r["variable"], r["value"]) for r in dups] == [
        ("inventory", "cp-01", "hosts.yml"),
        ("inventory", "nvidia_driver_branch", "group_vars/gpu_workers/gpu.yml"),
        ("inventory", "gpuforge_cluster_name", "group_vars/k8s_cluster.yml"),
    ]
    assert dups[2]["message"] == (
        "inventory: group_vars/k8s_cluster.yml line 4: key gpuforge_cluster_name appears a second time (first at line "
        "2); YAML keeps the last value silently, so one of them is lost: remove the one you did not mean")


def test_the_playbooks_group_vars_are_read_too(tmp_path):
    write(tmp_path / "inventory" / "hosts.yml", "---\nall:\n  hosts:\n    cp-01:\n")
    write(tmp_path / "playbooks" / "group_vars" / "all.yml", "---\ncommon_disable_swap: true\ncommon_disable_swap: false\n")
    groups, hostvars = site()
    records = checks(groups, hostvars, sources=[str(tmp_path / "inventory" / "hosts.yml")],
                     playbook_dir=str(tmp_path / "playbooks"))
    dup, = [r for r in failed(records) if r["check"] == "inventory_file"]
    assert dup["value"] == str(tmp_path / "playbooks" / "group_vars" / "all.yml")  # outside the inventory folder


def test_where_a_conflicting_value_was_set(tmp_path):
    hosts = write(tmp_path / "hosts.yml", "---\nall:\n  children:\n    k8s_cluster:\n      hosts:\n        cp-01:\n"
                                          "          gpuforge_dns_domain: cluster.example\n")
    write(tmp_path / "group_vars" / "k8s_cluster.yml", "---\ngpuforge_pod_subnet: 10.244.0.0/16\n")
    write(tmp_path / "group_vars" / "gpu_workers.yml", "---\ngpuforge_pod_subnet: 10.245.0.0/16\n")
    groups, hostvars = site(k8s_cluster={"gpuforge_pod_subnet": "10.244.0.0/16"},
                            host_vars={"gpu-01": {"gpuforge_pod_subnet": "10.245.0.0/16"},
                                       "cp-01": {"gpuforge_dns_domain": "cluster.example"}})
    records = checks(groups, hostvars, sources=[str(hosts)])
    msgs = {(r["host"], r["variable"]): r["message"] for r in failed(records)}
    assert sorted(msgs) == [("cpu-01", "gpuforge_dns_domain"), ("gpu-01", "gpuforge_dns_domain"),
                            ("gpu-01", "gpuforge_pod_subnet")]
    assert msgs[("gpu-01", "gpuforge_pod_subnet")].startswith(
        "gpu-01: gpuforge_pod_subnet is '10.245.0.0/16' (set in group_vars/gpu_workers.yml, group_vars/k8s_cluster.yml) "
        "but '10.244.0.0/16' (set in group_vars/k8s_cluster.yml) on the first control plane cp-01")
    assert msgs[("cpu-01", "gpuforge_dns_domain")].startswith(
        "cpu-01: gpuforge_dns_domain is 'cluster.local' (the default: not set for this host) but 'cluster.example' "
        "(set in hosts.yml (host cp-01)) on the first control plane cp-01")


# --- with Ansible's own hostvars --------------------------------------------------------------


PLAYBOOK = """---
- name: The inventory stage
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write its records
      ansible.builtin.copy:
        content: >-
          {{ groups | gpuforge.cluster.preflight_inventory_checks(hostvars, sources=ansible_inventory_sources,
                                                                   playbook_dir=playbook_dir) | to_json }}
        dest: "{{ out }}"
        mode: "0644"
"""


def run_inventory_stage(tmp_path, inventory):
    write(tmp_path / "pb" / "checks.yml", PLAYBOOK)
    out = tmp_path / "records.json"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_HOME=str(tmp_path / "ansible-home"),
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                           str(tmp_path / "pb" / "checks.yml"), "-e", "out=%s" % out],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_ansible_hostvars_undefined_values_duplicates_and_origins(tmp_path):
    hosts = write(tmp_path / "inventory" / "hosts.yml", """---
all:
  children:
    k8s_cluster:
      children:
        control_plane:
          hosts:
            cp-01: {ansible_host: 10.20.0.11}
        workers:
          hosts:
            cpu-01: {ansible_host: 10.20.0.21}
          children:
            gpu_workers:
              hosts:
                gpu-01: {ansible_host: 10.20.0.31, gpuforge_node_ip: 10.30.0.31}
""")
    write(tmp_path / "inventory" / "group_vars" / "k8s_cluster.yml", """---
cni_bundle_dir: /srv/gpuforge/cni
gpuforge_cluster_name: lab
gpuforge_pod_subnet: 10.244.0.0/16
gpuforge_cluster_name: prod
""")
    write(tmp_path / "inventory" / "group_vars" / "gpu_workers" / "main.yml", "---\ngpuforge_pod_subnet: 10.245.0.0/16\n")
    write(tmp_path / "inventory" / "host_vars" / "cpu-01.yml",
          "---\ngpuforge_control_plane_endpoint: \"{{ lb_address }}:6443\"\n")
    records = run_inventory_stage(tmp_path, hosts)
    bad = [r for r in records if not r["ok"]]
    assert [(r["host"], r["check"], r["variable"]) for r in bad] == [
        ("inventory", "inventory_file", "gpuforge_cluster_name"),
        ("cpu-01", "variable_template", "gpuforge_control_plane_endpoint"),
        ("gpu-01", "kubernetes_consistent", "gpuforge_pod_subnet"),
    ]
    assert bad[0]["message"] == (
        "inventory: group_vars/k8s_cluster.yml line 5: key gpuforge_cluster_name appears a second time (first at line "
        "3); YAML keeps the last value silently, so one of them is lost: remove the one you did not mean")
    # the undefined variable of a value: one record naming host and variable, not a failed task
    assert bad[1]["message"] == "cpu-01: gpuforge_control_plane_endpoint cannot be evaluated: 'lb_address' is undefined"
    assert bad[2]["message"].startswith(
        "gpu-01: gpuforge_pod_subnet is '10.245.0.0/16' (set in group_vars/gpu_workers/main.yml, "
        "group_vars/k8s_cluster.yml) but '10.244.0.0/16' (set in group_vars/k8s_cluster.yml) on the first control "
        "plane cp-01")
