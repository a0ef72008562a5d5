"""Preflight checks of the Kubernetes layer across hosts and roles (plugins/filter/preflight.py,
_kubernetes_checks): cluster-wide variables the same on every host, node addresses outside the pod and
service subnets, an API endpoint the nodes reach, kubeadm and kubelet within the version skew policy, and
cni_pod_subnet the same as the cluster's. The rules of one host's variables are in test_variable_rules.py.

The inventories look like inventories/example (3 control planes, 2 CPU and 2 GPU workers on 10.20.0.0/24,
GPU workers with a second network for the node IP), resolved as Ansible would: group_vars/k8s_cluster on
every host, then host_vars. The argument specs are the collection's own (roles/*/meta/argument_specs.yml,
the cluster spec and constraints of roles/preflight/vars/main.yml); the cni role's options are given here so
that these tests do not depend on that role.
"""

import pytest
import yaml

from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf

from conftest import ROOT

CP = "kubernetes_control_plane_"
NEW_CHECKS = ("kubernetes_consistent", "node_address_subnet", "api_endpoint", "kubernetes_version_skew",
              "cni_pod_subnet")
CNI_SPEC = {
    "cni_plugin": {"type": "str", "default": "calico", "choices": ["calico", "cilium", "flannel", "none"]},
    "cni_pod_subnet": {"type": "str", "default": ""},
}
ADDRESSES = {"cp-01": "10.20.0.11", "cp-02": "10.20.0.12", "cp-03": "10.20.0.13", "cpu-01": "10.20.0.21",
             "cpu-02": "10.20.0.22", "gpu-01": "10.20.0.31", "gpu-02": "10.20.0.32"}
KUBE_VIP = {CP + "ha_mode": "kube_vip", CP + "vip": "10.20.0.10",
            CP + "kube_vip_image": "registry.example.internal/kube-vip/kube-vip:v1.0.1"}


@pytest.fixture(scope="module")
def specs():
    return pf.preflight_load_argument_specs(ROOT / "roles")


@pytest.fixture(scope="module")
def preflight_vars():
    return yaml.safe_load((ROOT / "roles" / "preflight" / "vars" / "main.yml").read_text())


def site(control_planes=("cp-01", "cp-02", "cp-03"), k8s_cluster=None, host_vars=None):
    """groups and hostvars of the example site; k8s_cluster: group_vars/k8s_cluster; host_vars: {host: vars}."""
    workers = ["cpu-01", "cpu-02", "gpu-01", "gpu-02"]
    hosts = list(control_planes) + workers
    groups = {"all": hosts, "ungrouped": [], "k8s_cluster": hosts, "control_plane": list(control_planes),
              "workers": workers, "gpu_workers": ["gpu-01", "gpu-02"]}
    hostvars = {}
    for host in hosts:
        hostvars[host] = {"inventory_hostname": host, "ansible_host": ADDRESSES.get(host, host),
                          "ansible_user": "ops", "group_names": [], "ansible_facts": {}}
        if host.startswith("gpu-"):
            hostvars[host]["gpuforge_node_ip"] = "10.30.0.%s" % ADDRESSES[host].rsplit(".", 1)[1]
        hostvars[host].update(k8s_cluster or {})
        hostvars[host].update((host_vars or {}).get(host, {}))
    return groups, hostvars


def checks(specs, preflight_vars, groups, hostvars, **overrides):
    argument_specs = dict(specs, cni=CNI_SPEC)
    argument_specs.update(overrides)
    records = pf.preflight_inventory_checks(
        groups, hostvars, argument_specs=argument_specs, cluster_spec=preflight_vars["__preflight_cluster_spec"],
        constraints=preflight_vars["__preflight_constraints"])
    for r in records:
        assert r["message"].startswith(r["host"] + ": "), r
    return records


def failed(records, check=None):
    return [r for r in records if not r["ok"] and (check is None or r["check"] == check)]


def of(records, check):
    return [r for r in records if r["check"] == check]


def summary(records):
    """(host, check, variable, severity) of every failed record."""
    return [(r["host"], r["check"], r["variable"], r["severity"]) for r in failed(records)]


# --- a good site ------------------------------------------------------------------


def test_ha_site_with_kube_vip_passes(specs, preflight_vars):
    records = checks(specs, preflight_vars, *site(k8s_cluster=dict(KUBE_VIP, **{CP + "version": "1.37.2",
                                                                              "kubernetes_node_version": "1.37.2"})))
    assert failed(records) == []
    hosts = ["cp-01", "cp-02", "cp-03", "cpu-01", "cpu-02", "gpu-01", "gpu-02"]
    # one passed record for the cluster-wide checks, one per host for the per-host ones
    consistent, = of(records, "kubernetes_consistent")
    assert consistent["host"] == "inventory"
    assert consistent["message"] == (
        "inventory: the cluster-wide variables kubernetes_control_plane_version, "
        "kubernetes_control_plane_cluster_name, "
        "kubernetes_control_plane_pod_subnet, kubernetes_control_plane_service_subnet, "
        "kubernetes_control_plane_dns_domain, kubernetes_control_plane_api_port, kubernetes_control_plane_ha_mode, "
        "kubernetes_control_plane_endpoint, kubernetes_control_plane_vip are the same on all 7 host(s) of k8s_cluster")
    endpoint, = of(records, "api_endpoint")
    assert endpoint["message"] == ("inventory: the nodes reach the API at the VIP 10.20.0.10 "
                                   "(kubernetes_control_plane_ha_mode kube_vip, 3 control plane(s))")
    assert [r["host"] for r in of(records, "node_address_subnet")] == hosts
    assert [r["host"] for r in of(records, "kubernetes_version_skew")] == hosts
    assert of(records, "cni_pod_subnet") == []  # empty: the cni role reads the cluster's
    gpu = [r for r in of(records, "node_address_subnet") if r["host"] == "gpu-01"][0]
    assert gpu["message"] == (
        "gpu-01: node address(es) 10.30.0.31 (gpuforge_node_ip), 10.20.0.31 (ansible_host) are outside "
        "kubernetes_control_plane_pod_subnet 10.244.0.0/16 and kubernetes_control_plane_service_subnet 10.96.0.0/12")
    skew = {r["host"]: r["message"] for r in of(records, "kubernetes_version_skew")}
    assert skew["cp-02"] == ("cp-02: kubeadm and kubelet 1.37.2 (kubernetes_node_version) deploy and run "
                             "kubernetes_control_plane_version 1.37.2")
    assert skew["cpu-01"] == ("cpu-01: kubelet 1.37.2 (kubernetes_node_version) is within the version skew policy "
                              "of kubernetes_control_plane_version 1.37.2")


def test_role_defaults_apply_to_a_single_control_plane(specs, preflight_vars):
    # Nothing of the Kubernetes layer set: the defaults of both roles agree and pass.
    records = checks(specs, preflight_vars, *site(control_planes=("cp-01",)))
    assert failed(records) == []
    endpoint, = of(records, "api_endpoint")
    assert endpoint["message"] == ("inventory: the nodes reach the API at the address of cp-01 "
                                   "(kubernetes_control_plane_ha_mode none, 1 control plane(s))")
    default = specs["kubernetes_control_plane"][CP + "version"]["default"]
    assert {r["value"] for r in of(records, "kubernetes_version_skew")} == {
        specs["kubernetes_node"]["kubernetes_node_version"]["default"]}
    assert default in of(records, "kubernetes_version_skew")[0]["message"]


def test_checks_need_the_control_plane_role(specs, preflight_vars):
    groups, hostvars = site(control_planes=("cp-01", "cp-02"), host_vars={"cpu-01": {"gpuforge_node_ip": "10.96.0.9"}})
    without = {role: options for role, options in specs.items() if role != "kubernetes_control_plane"}
    records = pf.preflight_inventory_checks(groups, hostvars, argument_specs=without,
                                            cluster_spec=preflight_vars["__preflight_cluster_spec"])
    assert [r for r in records if r["check"] in NEW_CHECKS] == []
    assert summary(records) == [("inventory", "control_plane_odd", "groups['control_plane']", "error")]


def test_the_even_control_plane_check_stays(specs, preflight_vars):
    records = checks(specs, preflight_vars, *site(control_planes=("cp-01", "cp-02"), k8s_cluster=KUBE_VIP))
    assert summary(records) == [("inventory", "control_plane_odd", "groups['control_plane']", "error")]
    assert failed(records)[0]["message"] == (
        "inventory: group control_plane has 2 hosts (cp-01, cp-02); etcd needs an odd number (1, 3, 5) of "
        "control-plane nodes for quorum")
    # without an endpoint both problems are reported
    records = checks(specs, preflight_vars, *site(control_planes=("cp-01", "cp-02")))
    assert summary(records) == [("inventory", "control_plane_odd", "groups['control_plane']", "error"),
                                ("cp-02", "api_endpoint", CP + "ha_mode", "error")]


# --- 1. cluster-wide variables ----------------------------------------------------


def test_cluster_variables_that_differ_between_hosts(specs, preflight_vars):
    groups, hostvars = site(k8s_cluster=KUBE_VIP, host_vars={
        "gpu-01": {CP + "pod_subnet": "10.245.0.0/16"},
        "gpu-02": {CP + "pod_subnet": "10.245.0.0/16"},
        "cp-03": {CP + "api_port": 8443, CP + "cluster_name": "gpuforge-b"},
    })
    records = checks(specs, preflight_vars, groups, hostvars)
    assert summary(records) == [
        ("cp-03", "kubernetes_consistent", CP + "cluster_name", "error"),
        ("gpu-01", "kubernetes_consistent", CP + "pod_subnet", "error"),
        ("gpu-02", "kubernetes_consistent", CP + "pod_subnet", "error"),
        ("cp-03", "kubernetes_consistent", CP + "api_port", "error"),
    ]
    msgs = {(r["host"], r["variable"]): r["message"] for r in failed(records)}
    assert msgs[("gpu-01", CP + "pod_subnet")] == (
        "gpu-01: kubernetes_control_plane_pod_subnet is '10.245.0.0/16' but '10.244.0.0/16' on the first control "
        "plane cp-01 (values: '10.244.0.0/16' on cp-01, cp-02, cp-03, cpu-01, cpu-02; '10.245.0.0/16' on gpu-01, "
        "gpu-02); kubeadm sets the cluster up once, so every host of k8s_cluster must see the same value: set "
        "kubernetes_control_plane_pod_subnet once in group_vars/k8s_cluster, not per host or per group")
    port = [r for r in failed(records) if r["variable"] == CP + "api_port"][0]
    assert (port["value"], port["expected"]) == (8443, 6443)
    assert "is 8443 but 6443 on the first control plane cp-01 (values: 6443 on cp-01, cp-02, cpu-01, cpu-02, " \
           "gpu-01, gpu-02; 8443 on cp-03)" in port["message"]
    # the same problem of two hosts is one line of the failure message
    report = pf.preflight_report(records, hosts=list(hostvars))
    assert sum("gpu-01, gpu-02: kubernetes_control_plane_pod_subnet is '10.245.0.0/16'" in line
               for line in report["failure_message"].splitlines()) == 1
    assert not of(records, "kubernetes_consistent")[0]["ok"]  # no passed record next to failures


def test_a_value_set_for_some_groups_only_names_the_role_default(specs, preflight_vars):
    # kubernetes_control_plane_version set in group_vars/control_plane only: the workers get the default.
    default = specs["kubernetes_control_plane"][CP + "version"]["default"]
    other = "1.36.4" if default != "1.36.4" else "1.36.5"
    groups, hostvars = site(k8s_cluster=KUBE_VIP, host_vars={
        h: {CP + "version": other, "kubernetes_node_version": other} for h in ("cp-01", "cp-02", "cp-03")})
    for host in ("cpu-01", "cpu-02", "gpu-01", "gpu-02"):
        hostvars[host]["kubernetes_node_version"] = other
    records = checks(specs, preflight_vars, groups, hostvars)
    assert summary(records) == [(h, "kubernetes_consistent", CP + "version", "error")
                                for h in ("cpu-01", "cpu-02", "gpu-01", "gpu-02")]
    assert failed(records)[0]["message"].startswith(
        "cpu-01: kubernetes_control_plane_version is '%s' (the role default: not set for this host) but '%s' on the "
        "first control plane cp-01 (values: '%s' on cp-01, cp-02, cp-03; '%s' on cpu-01, cpu-02, gpu-01, gpu-02)"
        % (default, other, other, default))


def test_values_that_failed_their_own_check_are_not_compared(specs, preflight_vars):
    groups, hostvars = site(k8s_cluster=KUBE_VIP, host_vars={"cpu-01": {CP + "api_port": "lots"},
                                                              "cpu-02": {CP + "ha_mode": "keepalived"}})
    records = checks(specs, preflight_vars, groups, hostvars)
    assert summary(records) == [("cpu-01", "variable_type", CP + "api_port", "error"),
                                ("cpu-02", "variable_choice", CP + "ha_mode", "error")]


def test_many_hosts_are_listed_briefly(specs, preflight_vars):
    groups, hostvars = site(k8s_cluster=KUBE_VIP)
    for index in range(3, 12):
        host = "gpu-%02d" % index
        groups["k8s_cluster"].append(host)
        groups["workers"].append(host)
        hostvars[host] = dict(hostvars["gpu-01"], inventory_hostname=host, ansible_host="10.20.0.%d" % (30 + index),
                              gpuforge_node_ip="10.30.0.%d" % (30 + index))
    hostvars["gpu-11"][CP + "dns_domain"] = "cluster.example"
    rec, = failed(checks(specs, preflight_vars, groups, hostvars))
    assert "(values: 'cluster.local' on cp-01, cp-02, cp-03, cpu-01, cpu-02, gpu-01 and 9 more; " \
           "'cluster.example' on gpu-11)" in rec["message"]


# --- 2. node addresses and the pod and service subnets ----------------------------


def test_node_addresses_inside_the_pod_or_service_subnet(specs, preflight_vars):
    groups, hostvars = site(k8s_cluster=dict(KUBE_VIP, **{CP + "service_subnet": "10.20.0.0/16"}), host_vars={
        "gpu-01": {"gpuforge_node_ip": "10.244.0.31"},
        "gpu-02": {"kubernetes_node_ip": "10.244.7.32"},
        "cpu-01": {"ansible_host": "node-cpu-01.example.internal"},
    })
    # the VIP is now inside the service subnet: the single-host rule reports it on every host
    records = checks(specs, preflight_vars, groups, hostvars)
    subnet = failed(records, "node_address_subnet")
    assert [(r["host"], r["variable"], r["value"]) for r in subnet] == [
        ("cp-01", "ansible_host", "10.20.0.11"), ("cp-02", "ansible_host", "10.20.0.12"),
        ("cp-03", "ansible_host", "10.20.0.13"), ("cpu-02", "ansible_host", "10.20.0.22"),
        ("gpu-01", "gpuforge_node_ip", "10.244.0.31"), ("gpu-01", "ansible_host", "10.20.0.31"),
        ("gpu-02", "kubernetes_node_ip", "10.244.7.32"), ("gpu-02", "ansible_host", "10.20.0.32"),
    ]
    msgs = {(r["host"], r["variable"]): r["message"] for r in subnet}
    assert msgs[("gpu-01", "gpuforge_node_ip")] == (
        "gpu-01: gpuforge_node_ip 10.244.0.31 is inside kubernetes_control_plane_pod_subnet 10.244.0.0/16: the CNI "
        "routes the pod subnet to pods, so traffic to this node would go astray; choose a "
        "kubernetes_control_plane_pod_subnet (in group_vars/k8s_cluster) that no node address falls in")
    assert msgs[("cp-01", "ansible_host")] == (
        "cp-01: ansible_host 10.20.0.11 is inside kubernetes_control_plane_service_subnet 10.20.0.0/16: kube-proxy "
        "captures the service subnet, so traffic to this node would be taken for service traffic; choose a "
        "kubernetes_control_plane_service_subnet (in group_vars/k8s_cluster) that no node address falls in")
    # a DNS name in ansible_host is not an address: cpu-01 has none the inventory knows, so no record
    assert [r for r in of(records, "node_address_subnet") if r["host"] == "cpu-01"] == []


def test_one_address_in_several_variables_is_reported_once(specs, preflight_vars):
    groups, hostvars = site(control_planes=("cp-01",), host_vars={
        "cp-01": {"ansible_host": "10.244.1.11", "gpuforge_node_ip": "10.244.1.11",
                  CP + "advertise_address": "10.244.1.11"},
        # advertise_address is a control-plane variable: a worker's is not its address
        "cpu-01": {CP + "advertise_address": "10.244.1.21"},
    })
    records = checks(specs, preflight_vars, groups, hostvars)
    subnet = failed(records, "node_address_subnet")
    assert len(subnet) == 1
    assert subnet[0]["message"].startswith(
        "cp-01: gpuforge_node_ip and kubernetes_control_plane_advertise_address and ansible_host 10.244.1.11 is "
        "inside kubernetes_control_plane_pod_subnet 10.244.0.0/16")


def test_invalid_subnets_and_addresses_are_left_to_their_own_checks(specs, preflight_vars):
    groups, hostvars = site(control_planes=("cp-01",), k8s_cluster={CP + "pod_subnet": "10.244.0.0/33"},
                            host_vars={"gpu-01": {"gpuforge_node_ip": "10.30.0.300"}})
    records = checks(specs, preflight_vars, groups, hostvars)
    assert sorted(r["check"] for r in failed(records)) == ["variable_format"] + ["variable_rule"] * 5
    assert failed(records, "node_address_subnet") == []
    # the service subnet is still checked
    assert of(records, "node_address_subnet")[0]["message"] == (
        "cp-01: node address(es) 10.20.0.11 (ansible_host) are outside kubernetes_control_plane_service_subnet "
        "10.96.0.0/12")


# --- 3. the API endpoint ----------------------------------------------------------


def test_several_control_planes_without_an_endpoint(specs, preflight_vars):
    records = checks(specs, preflight_vars, *site())
    assert summary(records) == [("cp-02", "api_endpoint", CP + "ha_mode", "error"),
                                ("cp-03", "api_endpoint", CP + "ha_mode", "error")]
    assert failed(records)[0]["message"] == (
        "cp-02: group control_plane has 3 hosts (cp-01, cp-02, cp-03) but kubernetes_control_plane_ha_mode is 'none' "
        "and kubernetes_control_plane_endpoint is empty: the control planes that join (cp-02, cp-03) need an API "
        "endpoint they all share; set kubernetes_control_plane_ha_mode to kube_vip (with "
        "kubernetes_control_plane_vip and kubernetes_control_plane_kube_vip_image) or external (with "
        "kubernetes_control_plane_endpoint, the load balancer) in group_vars/k8s_cluster")
    report = pf.preflight_report(records, hosts=[])
    assert "- cp-02, cp-03: group control_plane has 3 hosts" in report["failure_message"]


@pytest.mark.parametrize("k8s", [
    {CP + "ha_mode": "external", CP + "endpoint": "k8s-api.example.internal:6443"},
    {CP + "ha_mode": "external", CP + "endpoint": "10.20.0.5"},
    {CP + "endpoint": "10.20.0.11"},  # none: the first control plane's address, set explicitly
    {CP + "endpoint": "k8s-api.example.internal"},  # none: a DNS name (round robin) cannot be judged
    dict(KUBE_VIP, **{CP + "endpoint": "10.20.0.10:6443"}),
])
def test_endpoints_the_nodes_reach(specs, preflight_vars, k8s):
    records = checks(specs, preflight_vars, *site(k8s_cluster=k8s))
    assert failed(records) == []
    assert of(records, "api_endpoint")[0]["ok"]


def test_an_endpoint_where_nothing_answers(specs, preflight_vars):
    records = checks(specs, preflight_vars, *site(control_planes=("cp-01",),
                                                  k8s_cluster={CP + "endpoint": "10.20.0.99:6443"}))
    rec, = failed(records)
    assert (rec["host"], rec["check"], rec["variable"], rec["severity"]) == (
        "cp-01", "api_endpoint", CP + "endpoint", "error")
    assert rec["message"] == (
        "cp-01: kubernetes_control_plane_endpoint 10.20.0.99:6443 is not the address of a control plane (cp-01 "
        "10.20.0.11) and kubernetes_control_plane_ha_mode is none, so no load balancer or VIP holds it: nothing "
        "would answer there; leave kubernetes_control_plane_endpoint empty (the first control plane's address) or "
        "set it to a control plane's address, or set kubernetes_control_plane_ha_mode external when a load "
        "balancer answers at 10.20.0.99:6443")
    # a worker's address is no better
    records = checks(specs, preflight_vars, *site(control_planes=("cp-01",),
                                                  k8s_cluster={CP + "endpoint": "10.20.0.21"}))
    assert summary(records) == [("cp-01", "api_endpoint", CP + "endpoint", "error")]


def test_an_endpoint_is_not_judged_when_a_control_plane_address_is_unknown(specs, preflight_vars):
    groups, hostvars = site(control_planes=("cp-01",), k8s_cluster={CP + "endpoint": "10.20.0.99"},
                            host_vars={"cp-01": {"ansible_host": "cp-01.example.internal"}})
    records = checks(specs, preflight_vars, groups, hostvars)
    assert failed(records) == []


def test_an_external_endpoint_on_a_control_plane_api_port_is_a_warning(specs, preflight_vars):
    k8s = {CP + "ha_mode": "external", CP + "endpoint": "10.20.0.12:6443"}
    rec, = failed(checks(specs, preflight_vars, *site(k8s_cluster=k8s)))
    assert (rec["host"], rec["variable"], rec["severity"]) == ("cp-01", CP + "endpoint", "warning")
    assert rec["message"] == (
        "cp-01: kubernetes_control_plane_endpoint 10.20.0.12:6443 (ha_mode external: the load balancer) is the "
        "address of control plane cp-02 on kubernetes_control_plane_api_port 6443, where its own API server "
        "listens: the nodes would reach cp-02 only, not a load balancer, and lose the API when it is down; set "
        "kubernetes_control_plane_endpoint to the load balancer")
    # a load balancer on a control plane, on another port, is the site's choice
    k8s[CP + "endpoint"] = "10.20.0.12:8443"
    assert failed(checks(specs, preflight_vars, *site(k8s_cluster=k8s))) == []


def test_the_vip_must_not_be_a_node_address(specs, preflight_vars):
    groups, hostvars = site(k8s_cluster=dict(KUBE_VIP, **{CP + "vip": "10.30.0.32"}))
    rec, = failed(checks(specs, preflight_vars, groups, hostvars))
    assert (rec["host"], rec["check"], rec["variable"], rec["value"]) == (
        "gpu-02", "api_endpoint", CP + "vip", "10.30.0.32")
    assert rec["message"] == (
        "gpu-02: kubernetes_control_plane_vip 10.30.0.32 is the address of this host (gpuforge_node_ip): kube-vip "
        "would take over the node's own address; choose an unused IP address of the control planes' subnet for "
        "kubernetes_control_plane_vip")


def test_an_endpoint_that_is_not_the_vip_is_reported_once_by_the_rule(specs, preflight_vars):
    records = checks(specs, preflight_vars, *site(k8s_cluster=dict(KUBE_VIP, **{CP + "endpoint": "10.20.0.99"})))
    assert {r["check"] for r in failed(records)} == {"variable_rule"}
    assert of(records, "api_endpoint") == []  # no passed record either


# --- 4. version skew --------------------------------------------------------------


@pytest.mark.parametrize("host,version,message", [
    ("cp-02", "1.36.5",
     "cp-02: kubernetes_node_version 1.36.5 (kubeadm and kubelet of this control plane) is not a 1.37 release like "
     "kubernetes_control_plane_version 1.37.2: kubeadm sets up the control plane of its own minor only; set "
     "kubernetes_node_version to 1.37.2 (or a newer 1.37 patch) on the control planes"),
    ("cp-01", "1.38.0",
     "cp-01: kubernetes_node_version 1.38.0 (kubeadm and kubelet of this control plane) is not a 1.37 release like "
     "kubernetes_control_plane_version 1.37.2: kubeadm sets up the control plane of its own minor only; set "
     "kubernetes_node_version to 1.37.2 (or a newer 1.37 patch) on the control planes"),
    ("cp-03", "1.37.1",
     "cp-03: kubernetes_node_version 1.37.1 (kubeadm of this control plane) is older than "
     "kubernetes_control_plane_version 1.37.2: kubeadm cannot deploy a control plane newer than itself; set "
     "kubernetes_node_version to 1.37.2 (or a newer 1.37 patch) on the control planes"),
    ("cp-03", "1.37.3", None),
    ("cpu-01", "1.38.0",
     "cpu-01: kubernetes_node_version 1.38.0 (the kubelet) is newer than kubernetes_control_plane_version 1.37.2: a "
     "kubelet must not be newer than the API server (Kubernetes version skew policy); set kubernetes_node_version "
     "to a 1.37 release or older (down to 1.34)"),
    ("gpu-02", "1.33.9",
     "gpu-02: kubernetes_node_version 1.33.9 (the kubelet) is 4 minor versions older than "
     "kubernetes_control_plane_version 1.37.2: the Kubernetes version skew policy allows a kubelet at most 3 minors "
     "older than the API server; set kubernetes_node_version to a release from 1.34 to 1.37"),
    ("gpu-02", "2.37.2",
     "gpu-02: kubernetes_node_version 2.37.2 (the kubelet) is not a 1.x release like "
     "kubernetes_control_plane_version 1.37.2; set kubernetes_node_version to a release from 1.34 to 1.37"),
    ("gpu-02", "1.34.0", None),
    ("cpu-02", "1.37.9", None),  # a newer patch: the policy compares minors
])
def test_version_skew(specs, preflight_vars, host, version, message):
    k8s = dict(KUBE_VIP, **{CP + "version": "1.37.2", "kubernetes_node_version": "1.37.2"})
    groups, hostvars = site(k8s_cluster=k8s, host_vars={host: {"kubernetes_node_version": version}})
    records = checks(specs, preflight_vars, groups, hostvars)
    if message is None:
        assert failed(records) == []
        return
    rec, = failed(records)
    assert (rec["host"], rec["check"], rec["variable"], rec["value"], rec["severity"]) == (
        host, "kubernetes_version_skew", "kubernetes_node_version", version, "error")
    assert rec["message"] == message


def test_version_skew_skips_what_is_not_a_release(specs, preflight_vars):
    k8s = dict(KUBE_VIP, **{CP + "version": "1.37.2", "kubernetes_node_version": "1.37.2"})
    groups, hostvars = site(k8s_cluster=k8s, host_vars={"cpu-01": {"kubernetes_node_version": "v1.37"}})
    records = checks(specs, preflight_vars, groups, hostvars)
    assert summary(records) == [("cpu-01", "variable_rule", "kubernetes_node_version", "error")]
    assert "cpu-01" not in [r["host"] for r in of(records, "kubernetes_version_skew")]
    k8s[CP + "version"] = "1.37"  # the rule reports it on every host; nothing to compare against
    records = checks(specs, preflight_vars, *site(k8s_cluster=k8s))
    assert of(records, "kubernetes_version_skew") == []
    assert {r["check"] for r in failed(records)} == {"variable_rule"}


def test_version_skew_needs_the_node_role(specs, preflight_vars):
    no_node = {role: options for role, options in specs.items() if role != "kubernetes_node"}
    groups, hostvars = site(k8s_cluster=KUBE_VIP)
    records = pf.preflight_inventory_checks(groups, hostvars, argument_specs=no_node,
                                            cluster_spec=preflight_vars["__preflight_cluster_spec"])
    assert of(records, "kubernetes_version_skew") == []
    assert failed(records) == []


# --- 5. cni_pod_subnet ------------------------------------------------------------


def test_cni_pod_subnet_must_be_the_cluster_pod_subnet(specs, preflight_vars):
    k8s = dict(KUBE_VIP, cni_pod_subnet="10.244.0.0/16")
    groups, hostvars = site(k8s_cluster=k8s, host_vars={"cp-02": {"cni_pod_subnet": "10.42.0.0/16"}})
    records = checks(specs, preflight_vars, groups, hostvars)
    rec, = failed(records)
    assert (rec["host"], rec["check"], rec["variable"], rec["value"], rec["expected"]) == (
        "cp-02", "cni_pod_subnet", "cni_pod_subnet", "10.42.0.0/16", "10.244.0.0/16")
    assert rec["message"] == (
        "cp-02: cni_pod_subnet 10.42.0.0/16 is not kubernetes_control_plane_pod_subnet 10.244.0.0/16: the CNI would "
        "give pods addresses outside the pod subnet the cluster allocates node pod ranges from; set cni_pod_subnet "
        "to 10.244.0.0/16, or leave it empty and the cni role reads the cluster's")
    assert len([r for r in of(records, "cni_pod_subnet") if r["ok"]]) == 6
    assert of(records, "cni_pod_subnet")[0]["message"] == (
        "cp-01: cni_pod_subnet 10.244.0.0/16 is kubernetes_control_plane_pod_subnet")


def test_cni_pod_subnet_is_not_checked_when_unused(specs, preflight_vars):
    # empty (read from the cluster), the cni role switched off, or no cni role in the collection yet
    for k8s in ({}, {"cni_plugin": "none", "cni_pod_subnet": "10.42.0.0/16"}):
        records = checks(specs, preflight_vars, *site(k8s_cluster=dict(KUBE_VIP, **k8s)))
        assert of(records, "cni_pod_subnet") == [] and failed(records) == []
    no_cni = {role: options for role, options in specs.items() if role != "cni"}
    groups, hostvars = site(k8s_cluster=KUBE_VIP)
    records = pf.preflight_inventory_checks(groups, hostvars, argument_specs=no_cni,
                                            cluster_spec=preflight_vars["__preflight_cluster_spec"])
    assert of(records, "cni_pod_subnet") == [] and failed(records) == []


# --- report -----------------------------------------------------------------------


def test_the_new_checks_are_inventory_checks_in_the_report(specs, preflight_vars):
    groups, hostvars = site(k8s_cluster=KUBE_VIP)
    records = checks(specs, preflight_vars, groups, hostvars)
    assert {r["check"] for r in records} >= set(NEW_CHECKS) - {"cni_pod_subnet"}
    assert set(NEW_CHECKS) | {"variable_rule"} <= pf._INVENTORY_CHECKS
    # gpu-02 dropped out of the play before its host checks: its inventory records do not hide that
    hosts = list(hostvars)
    report = pf.preflight_report(records, hosts=hosts, active_hosts=[h for h in hosts if h != "gpu-02"])
    assert report["errors"] == ["gpu-02: host dropped out of the play (failed or unreachable) before its checks ran"]


class Exploding(dict):
    """hostvars whose templated value fails, like `"{{ undefined }}"` does."""

    def __getitem__(self, key):
        if key == CP + "endpoint":
            raise RuntimeError("'lb_address' is undefined")
        return super().__getitem__(key)


def test_a_variable_that_cannot_be_evaluated_is_skipped(specs, preflight_vars):
    groups, hostvars = site(control_planes=("cp-01",))
    hostvars["cp-01"] = Exploding(hostvars["cp-01"], **{CP + "endpoint": "{{ lb_address }}"})
    records = checks(specs, preflight_vars, groups, hostvars)
    assert summary(records) == [("cp-01", "variable_template", CP + "endpoint", "error")]
