"""The cluster model (plugins/module_utils/cluster.py, the filter cluster_model of plugins/filter/cluster_model.py):
what every role reads instead of each other's variables, built from an inventory's groups and hostvars.

The inventories are shaped like inventories/example: group_vars/k8s_cluster resolved on every host, then
host_vars; inventory_dir as Ansible sets it (the folder of the inventory that defined the host)."""

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter.cluster_model import FilterModule, cluster_model
from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, cluster

from conftest import ROOT

SPECS = argspec.load_argument_specs(ROOT / "roles")
INVENTORY_DIR = "/srv/gpuforge/inventories/site"


def site(control_planes=("cp-01",), workers=("cpu-01", "gpu-01"), gpu_workers=("gpu-01",), k8s_cluster=None,
         host_vars=None):
    hosts = list(control_planes) + [w for w in workers if w not in control_planes]
    groups = {"all": hosts, "ungrouped": [], "k8s_cluster": hosts, "control_plane": list(control_planes),
              "workers": list(workers), "gpu_workers": list(gpu_workers)}
    hostvars = {}
    for host in hosts:
        hostvars[host] = {"inventory_hostname": host, "inventory_dir": INVENTORY_DIR, "ansible_host": host,
                          "group_names": [g for g in ("k8s_cluster", "control_plane", "workers", "gpu_workers")
                                          if host in groups[g]]}
        hostvars[host].update(k8s_cluster or {})
        hostvars[host].update((host_vars or {}).get(host, {}))
    return groups, hostvars


def build(groups, hostvars, **kwargs):
    return cluster.build(groups, hostvars, SPECS, **kwargs)


# --- the model's shape ------------------------------------------------------------------------


def test_the_model_of_a_small_inventory():
    model, problems = build(*site(host_vars={"cp-01": {"gpuforge_node_ip": "10.20.0.11"}}))
    assert problems == []
    assert model == {
        "name": "gpuforge",
        "kubernetes_version": "1.37.2",
        "kubernetes_minor": "1.37",
        "pod_subnet": "10.244.0.0/16",
        "service_subnet": "10.96.0.0/12",
        "dns_domain": "cluster.local",
        "cri_socket": "unix:///run/containerd/containerd.sock",
        "kubeadm_ignore_preflight_errors": [],
        "allow_http_downloads": False,
        "lab": False,
        "groups": {"cluster": ["cp-01", "cpu-01", "gpu-01"], "control_plane": ["cp-01"],
                   "workers": ["cpu-01", "gpu-01"], "gpu_workers": ["gpu-01"]},
        "first_control_plane": "cp-01",
        "api": {
            "port": 6443, "ha_mode": "none", "vip": "",
            "endpoint": {"host": "10.20.0.11", "port": 6443, "address": "10.20.0.11:6443",
                         "source": "the first control plane's address"},
            "kubeconfig": INVENTORY_DIR + "/artifacts/gpuforge-admin.conf",
            "delegate_to": "localhost",
        },
        "nodes": {
            "cp-01": {"name": "cp-01", "ip": "10.20.0.11", "control_plane": True, "first_control_plane": True,
                      "worker": False, "gpu_worker": False, "kubernetes_version": "1.37.2",
                      "kubeadm_dir": "/etc/kubernetes"},
            "cpu-01": {"name": "cpu-01", "ip": "", "control_plane": False, "first_control_plane": False,
                       "worker": True, "gpu_worker": False, "kubernetes_version": "1.37.2",
                       "kubeadm_dir": "/etc/kubernetes"},
            "gpu-01": {"name": "gpu-01", "ip": "", "control_plane": False, "first_control_plane": False,
                       "worker": True, "gpu_worker": True, "kubernetes_version": "1.37.2",
                       "kubeadm_dir": "/etc/kubernetes"},
        },
        "node_hosts": {"cp-01": "cp-01", "cpu-01": "cpu-01", "gpu-01": "gpu-01"},
    }


def test_cluster_values_are_the_first_control_planes_converted_to_their_type():
    groups, hostvars = site(k8s_cluster={"gpuforge_cluster_name": "gpu-prod", "gpuforge_kubernetes_version": "1.38.1",
                                         "gpuforge_api_port": "8443", "gpuforge_lab": "yes",
                                         "gpuforge_allow_http_downloads": "true"})
    hostvars["cpu-01"]["gpuforge_cluster_name"] = "other"  # preflight reports the disagreement
    model, problems = build(groups, hostvars)
    assert problems == []
    assert (model["name"], model["kubernetes_version"], model["kubernetes_minor"]) == ("gpu-prod", "1.38.1", "1.38")
    assert model["api"]["port"] == 8443 and model["api"]["endpoint"]["port"] == 8443
    assert (model["lab"], model["allow_http_downloads"]) == (True, True)
    assert model["api"]["kubeconfig"] == INVENTORY_DIR + "/artifacts/gpu-prod-admin.conf"


def test_hosts_outside_k8s_cluster_and_inventory_order():
    groups, hostvars = site(control_planes=("cp-02", "cp-01", "cp-03"), workers=("w-b", "w-a"), gpu_workers=())
    groups["k8s_cluster"] = ["w-b", "cp-02", "cp-01", "cp-03"]  # w-a only in workers
    model, problems = build(groups, hostvars, )
    assert model["groups"]["cluster"] == ["w-b", "cp-02", "cp-01", "cp-03", "w-a"]
    assert model["first_control_plane"] == "cp-02"
    assert [h for h, n in model["nodes"].items() if n["first_control_plane"]] == ["cp-02"]
    # a host of no node group is no node
    groups["all"].append("bastion")
    hostvars["bastion"] = {}
    # every inventory host has an entry (a role may run on one outside the node groups), the cluster's are listed
    model = build(groups, hostvars)[0]
    assert "bastion" in model["nodes"] and "bastion" not in model["groups"]["cluster"]
    assert "bastion" not in model["node_hosts"].values()


# --- node names -------------------------------------------------------------------------------


def test_node_name_override():
    model, problems = build(*site(host_vars={"gpu-01": {"gpuforge_node_name": "gpu-a100-01.rack-2"}}))
    assert problems == []
    assert model["nodes"]["gpu-01"]["name"] == "gpu-a100-01.rack-2"
    assert model["node_hosts"] == {"cp-01": "cp-01", "cpu-01": "cpu-01", "gpu-a100-01.rack-2": "gpu-01"}
    # empty means the inventory hostname
    model, _ = build(*site(host_vars={"gpu-01": {"gpuforge_node_name": ""}}))
    assert model["nodes"]["gpu-01"]["name"] == "gpu-01"


def test_duplicate_node_names():
    # gpu-01's override is cpu-01's inventory hostname (case ignored)
    model, problems = build(*site(host_vars={"gpu-01": {"gpuforge_node_name": "CPU-01"}}))
    dup = [(h, v, c) for h, v, c, _m in problems]
    assert ("gpu-01", "gpuforge_node_name", "node_name_unique") in dup
    assert ("cpu-01", "inventory_hostname", "node_name_unique") in dup
    message = {h: m for h, _v, c, m in problems if c == "node_name_unique"}
    assert message["cpu-01"] == ("node name cpu-01 is also the node name of gpu-01 (case ignored); every node needs "
                                 "its own (gpuforge_node_name)")
    # the uppercase override is refused on its own too
    assert ("gpu-01", "gpuforge_node_name", "node_name") in dup
    # the first host keeps the name in node_hosts
    assert model["node_hosts"]["cpu-01"] == "cpu-01"


def test_invalid_node_names():
    groups, hostvars = site(workers=("cpu_01", "gpu-01"), host_vars={"gpu-01": {"gpuforge_node_name": "gpü-01"}})
    _model, problems = build(groups, hostvars)
    messages = {h: m for h, _v, c, m in problems if c == "node_name"}
    assert messages["cpu_01"] == (
        "node name cpu_01 (inventory_hostname) is not a valid DNS-1123 name: it has characters other than a-z, 0-9, "
        "'-' and '.' ('_'); Kubernetes node names must be lowercase letters, digits, '-' and '.' (or set "
        "gpuforge_node_name for this host)")
    assert messages["gpu-01"] == (
        "node name gpü-01 (gpuforge_node_name) is not a valid DNS-1123 name: it has characters other than a-z, 0-9, "
        "'-' and '.' ('ü' (U+00FC)); Kubernetes node names must be lowercase letters, digits, '-' and '.'")


# --- the API endpoint -------------------------------------------------------------------------


@pytest.mark.parametrize("k8s, node_ip, endpoint", [
    # none: the first control plane's address, when the inventory gives it
    ({}, "10.20.0.11", {"host": "10.20.0.11", "port": 6443, "address": "10.20.0.11:6443",
                        "source": "the first control plane's address"}),
    # ... and empty when it does not (kubernetes_control_plane reads it from the host's facts)
    ({}, None, {"host": "", "port": 6443, "address": "", "source": "the first control plane's address"}),
    ({"gpuforge_api_port": 7443}, "fd00::11", {"host": "fd00::11", "port": 7443, "address": "[fd00::11]:7443",
                                               "source": "the first control plane's address"}),
    # kube_vip: the VIP
    ({"gpuforge_ha_mode": "kube_vip", "gpuforge_vip": "10.20.0.10"}, "10.20.0.11",
     {"host": "10.20.0.10", "port": 6443, "address": "10.20.0.10:6443", "source": "gpuforge_vip"}),
    # an endpoint given wins, with its own port or gpuforge_api_port
    ({"gpuforge_ha_mode": "external", "gpuforge_control_plane_endpoint": "k8s-api.example.internal:8443"}, "10.20.0.11",
     {"host": "k8s-api.example.internal", "port": 8443, "address": "k8s-api.example.internal:8443",
      "source": "gpuforge_control_plane_endpoint"}),
    ({"gpuforge_control_plane_endpoint": "10.20.0.5", "gpuforge_api_port": 7443}, None,
     {"host": "10.20.0.5", "port": 7443, "address": "10.20.0.5:7443", "source": "gpuforge_control_plane_endpoint"}),
    ({"gpuforge_control_plane_endpoint": "[fd00::5]:6443"}, None,
     {"host": "fd00::5", "port": 6443, "address": "[fd00::5]:6443", "source": "gpuforge_control_plane_endpoint"}),
    # a malformed endpoint: none (the variable rules report it)
    ({"gpuforge_control_plane_endpoint": "api:port"}, "10.20.0.11",
     {"host": "", "port": 6443, "address": "", "source": ""}),
])
def test_endpoint_sources(k8s, node_ip, endpoint):
    host_vars = {"cp-01": {"gpuforge_node_ip": node_ip}} if node_ip else {}
    model, problems = build(*site(k8s_cluster=k8s, host_vars=host_vars))
    assert problems == []
    assert model["api"]["endpoint"] == endpoint


def test_several_control_planes_without_an_endpoint():
    groups, hostvars = site(control_planes=("cp-01", "cp-02", "cp-03"))
    _model, problems = build(groups, hostvars)
    assert [(h, v, c) for h, v, c, _m in problems] == [("cp-02", "gpuforge_ha_mode", "api_endpoint"),
                                                       ("cp-03", "gpuforge_ha_mode", "api_endpoint")]
    assert problems[0][3].startswith("group control_plane has 3 hosts (cp-01, cp-02, cp-03) but gpuforge_ha_mode is "
                                     "'none' and gpuforge_control_plane_endpoint is empty: the control planes that "
                                     "join (cp-02, cp-03) need an API endpoint they all share")
    # an endpoint (a load balancer in front with ha_mode none, or a VIP) is what they share
    for k8s in ({"gpuforge_control_plane_endpoint": "k8s-api.example.internal"},
                {"gpuforge_ha_mode": "kube_vip", "gpuforge_vip": "10.20.0.10"}):
        assert build(*site(control_planes=("cp-01", "cp-02", "cp-03"), k8s_cluster=k8s))[1] == []


def test_no_control_plane():
    groups, hostvars = site(control_planes=())
    model, problems = build(groups, hostvars)
    # not a problem of the model: the roles that need a control plane say so, preflight requires the group
    assert problems == []
    assert model["first_control_plane"] is None
    assert model["api"]["endpoint"] == {"host": "", "port": 6443, "address": "", "source": ""}


# --- the kubeconfig, versions, kubeadm folders ------------------------------------------------


def test_kubeconfig_default_and_override():
    groups, hostvars = site(k8s_cluster={"gpuforge_cluster_name": "lab"})
    assert build(groups, hostvars)[0]["api"]["kubeconfig"] == INVENTORY_DIR + "/artifacts/lab-admin.conf"
    # a trailing slash of inventory_dir is not doubled
    for host in hostvars:
        hostvars[host]["inventory_dir"] = INVENTORY_DIR + "/"
    assert build(groups, hostvars)[0]["api"]["kubeconfig"] == INVENTORY_DIR + "/artifacts/lab-admin.conf"
    # no inventory_dir (an inventory given as a host list): the playbook's folder
    for host in hostvars:
        del hostvars[host]["inventory_dir"]
    assert build(groups, hostvars, playbook_dir="/srv/gpuforge/playbooks")[0]["api"]["kubeconfig"] == (
        "/srv/gpuforge/playbooks/artifacts/lab-admin.conf")
    groups, hostvars = site(k8s_cluster={"gpuforge_kubeconfig": "/etc/gpuforge/admin.conf"})
    assert build(groups, hostvars)[0]["api"]["kubeconfig"] == "/etc/gpuforge/admin.conf"


def test_node_versions_and_kubeadm_folders():
    model, problems = build(*site(k8s_cluster={"gpuforge_kubernetes_version": "1.38.1"}, host_vars={
        "gpu-01": {"kubernetes_node_version": "1.37.4", "gpuforge_kubeadm_dir": "/srv/harness/"},
        "cpu-01": {"kubernetes_node_version": ""}}))
    assert problems == []
    assert {h: n["kubernetes_version"] for h, n in model["nodes"].items()} == {
        "cp-01": "1.38.1", "cpu-01": "1.38.1", "gpu-01": "1.37.4"}
    assert {h: n["kubeadm_dir"] for h, n in model["nodes"].items()} == {
        "cp-01": "/etc/kubernetes", "cpu-01": "/etc/kubernetes", "gpu-01": "/srv/harness"}


def test_a_version_that_is_no_release_has_no_minor():
    model, problems = build(*site(k8s_cluster={"gpuforge_kubernetes_version": "latest"}))
    assert problems == []  # the variable rules report it
    assert (model["kubernetes_version"], model["kubernetes_minor"]) == ("latest", "")


# --- unusable values --------------------------------------------------------------------------


class Exploding(dict):
    """hostvars whose templated value fails, like `"{{ undefined }}"` does."""

    def __init__(self, *args, broken=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.broken = broken

    def __getitem__(self, key):
        if key in self.broken:
            raise RuntimeError("'lb_address' is undefined\nmore")
        return super().__getitem__(key)


def test_values_that_cannot_be_used():
    groups, hostvars = site(k8s_cluster={"gpuforge_api_port": "lots"})
    hostvars["cp-01"] = Exploding(hostvars["cp-01"], gpuforge_control_plane_endpoint="{{ lb_address }}",
                                  broken=("gpuforge_control_plane_endpoint",))
    model, problems = build(groups, hostvars)
    assert problems == [
        ("cp-01", "gpuforge_api_port", "variable_type", "gpuforge_api_port cannot be used: it is not a valid int"),
        ("cp-01", "gpuforge_control_plane_endpoint", "variable_template",
         "gpuforge_control_plane_endpoint cannot be used: 'lb_address' is undefined"),
    ]
    # the defaults stand in
    assert model["api"]["port"] == 6443 and model["api"]["endpoint"]["source"] == "the first control plane's address"


def test_a_per_host_value_that_cannot_be_used_falls_back():
    groups, hostvars = site()
    hostvars["gpu-01"] = Exploding(hostvars["gpu-01"], gpuforge_node_name="{{ nope }}", broken=("gpuforge_node_name",))
    model, problems = build(groups, hostvars)
    assert problems == []  # preflight's variable check reports the template error
    assert model["nodes"]["gpu-01"]["name"] == "gpu-01"


def test_the_inputs_are_not_modified():
    groups, hostvars = site(host_vars={"cp-01": {"gpuforge_node_ip": "10.20.0.11"}})
    before = copy.deepcopy((groups, hostvars))
    build(groups, hostvars)
    assert (groups, hostvars) == before


# --- helpers ----------------------------------------------------------------------------------


def test_renamed_variables_name_a_cluster_wide_or_role_variable():
    known = {name for options in SPECS.values() for name in options}
    for old, new in cluster.RENAMED.items():
        assert old not in SPECS["cluster_model"], old
        assert new is None or new in known, (old, new)
    assert cluster.RENAMED["cni_pod_subnet"] == "gpuforge_pod_subnet"
    assert cluster.RENAMED["kubernetes_control_plane_version"] == "gpuforge_kubernetes_version"
    assert cluster.RENAMED["kubernetes_upgrade_drain_timeout"] == "kubernetes_drain_timeout"
    # every cluster-wide and per-host variable of the model is an option of roles/cluster_model
    assert set(cluster.CLUSTER_WIDE + cluster.PER_HOST) <= set(SPECS["cluster_model"])


def test_model_errors_and_node():
    model, problems = build(*site(control_planes=("cp-01", "cp-02", "cp-03")))
    assert cluster.model_errors(model, problems)[0].startswith("cp-02: group control_plane has 3 hosts")
    assert cluster.node(model, "cp-02")["control_plane"] is True
    with pytest.raises(KeyError, match="bastion is not a host of k8s_cluster .the cluster model knows cp-01, cp-02"):
        cluster.node(model, "bastion")
    with pytest.raises(KeyError, match="knows no host"):
        cluster.node({}, "cp-01")


def test_reference_host():
    groups, _ = site(control_planes=("cp-02", "cp-01"))
    assert cluster.reference_host(groups) == "cp-02"
    assert cluster.reference_host({"workers": ["w-1"]}) == "w-1"
    assert cluster.reference_host({}) is None


# --- the filter -------------------------------------------------------------------------------


def test_the_filter_returns_the_model_and_no_errors_for_a_good_inventory():
    groups, hostvars = site()
    got = cluster_model(groups, hostvars)
    assert got == {"model": build(groups, hostvars)[0], "errors": []}
    assert FilterModule().filters() == {"cluster_model": cluster_model}


def test_the_filter_errors_start_with_the_host_and_include_the_cluster_wide_rules():
    groups, hostvars = site(control_planes=("cp-01", "cp-02", "cp-03"),
                            k8s_cluster={"gpuforge_pod_subnet": "10.244.0.0/25"})
    errors = cluster_model(groups, hostvars)["errors"]
    assert errors[0].startswith("cp-02: group control_plane has 3 hosts")
    assert errors[1].startswith("cp-03: group control_plane has 3 hosts")
    # the pod subnet rule, once per host
    pod = [e for e in errors if "gpuforge_pod_subnet '10.244.0.0/25' is a /25" in e]
    assert [e.split(":")[0] for e in pod] == ["cp-01", "cp-02", "cp-03", "cpu-01", "gpu-01"]


def test_the_filter_names_a_value_of_the_wrong_type_on_its_host():
    groups, hostvars = site(host_vars={"gpu-01": {"gpuforge_node_ip": "10.30.0.300", "gpuforge_lab": "maybe"}})
    errors = cluster_model(groups, hostvars)["errors"]
    assert "gpu-01: gpuforge_lab cannot be used (it is not a valid bool)" in errors
    assert "gpu-01: gpuforge_node_ip '10.30.0.300' is not an IP address" in errors
    # the CNI's default (calico) applies to the pod network rule unless the host says otherwise
    groups, hostvars = site(k8s_cluster={"gpuforge_pod_subnet": "10.244.0.0/25", "cni_plugin": "none"})
    assert cluster_model(groups, hostvars)["errors"] == []


def test_the_filter_refuses_what_is_no_inventory():
    with pytest.raises(AnsibleFilterError, match="use it as groups | gpuforge.cluster.cluster_model.hostvars."):
        cluster_model(["cp-01"], {})
    with pytest.raises(AnsibleFilterError, match="cluster_model"):
        cluster_model({}, "hostvars")
