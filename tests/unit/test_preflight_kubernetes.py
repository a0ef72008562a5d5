"""Preflight checks of the Kubernetes layer across hosts and roles (plugins/module_utils/preflight_kubernetes.py,
through the filter preflight_inventory_checks): the cluster-wide gpuforge_* variables the same on every host,
node addresses outside the pod and service subnets, an API endpoint the nodes reach, and the per-host
kubernetes_node_version overrides within the version skew policy. The rules of one host's variables are in
test_variable_rules.py.

The cluster-wide variables are the cluster model's now (roles/cluster_model, gpuforge_*): they replaced
kubernetes_control_plane_{version,cluster_name,pod_subnet,...}, and cni_pod_subnet (there is one pod subnet,
gpuforge_pod_subnet; setting cni_pod_subnet is refused as renamed, see section 5).

The inventories look like inventories/example (3 control planes, 2 CPU and 2 GPU workers on 10.20.0.0/24,
GPU workers with a second network for the node IP), resolved as Ansible would: group_vars/k8s_cluster on
every host, then host_vars. The argument specs are the collection's own (roles/*/meta/argument_specs.yml;
the constraints are variable_rules.CONSTRAINTS). The rules of every role run now, the cni role's among them:
the hosts set cni_bundle_dir as inventories/example does (the cni role's options were given here before, so
that these tests did not depend on that role; it exists now).
"""

import pytest

from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf
from ansible_collections.gpuforge.cluster.plugins.module_utils import preflight_report

from conftest import ROOT

CP = "kubernetes_control_plane_"
G = "gpuforge_"
NEW_CHECKS = ("kubernetes_consistent", "node_address_subnet", "api_endpoint", "kubernetes_version_skew")
ADDRESSES = {"cp-01": "10.20.0.11", "cp-02": "10.20.0.12", "cp-03": "10.20.0.13", "cpu-01": "10.20.0.21",
             "cpu-02": "10.20.0.22", "gpu-01": "10.20.0.31", "gpu-02": "10.20.0.32"}
KUBE_VIP = {G + "ha_mode": "kube_vip", G + "vip": "10.20.0.10",
            CP + "kube_vip_image": "registry.example.internal/kube-vip/kube-vip:v1.0.1"}


@pytest.fixture(scope="module")
def specs():
    return pf.preflight_load_argument_specs(ROOT / "roles")


def site(control_planes=("cp-01", "cp-02", "cp-03"), k8s_cluster=None, host_vars=None):
    """groups and hostvars of the example site; k8s_cluster: group_vars/k8s_cluster; host_vars: {host: vars}."""
    workers = ["cpu-01", "cpu-02", "gpu-01", "gpu-02"]
    hosts = list(control_planes) + workers
    groups = {"all": hosts, "ungrouped": [], "k8s_cluster": hosts, "control_plane": list(control_planes),
              "workers": workers, "gpu_workers": ["gpu-01", "gpu-02"]}
    hostvars = {}
    for host in hosts:
        hostvars[host] = {"inventory_hostname": host, "ansible_host": ADDRESSES.get(host, host),
                          "ansible_user": "ops", "group_names": [], "ansible_facts": {},
                          "cni_bundle_dir": "/srv/gpuforge/cni"}
        if host.startswith("gpu-"):
            hostvars[host]["gpuforge_node_ip"] = "10.30.0.%s" % ADDRESSES[host].rsplit(".", 1)[1]
        hostvars[host].update(k8s_cluster or {})
        hostvars[host].update((host_vars or {}).get(host, {}))
    return groups, hostvars


def checks(specs, groups, hostvars, **overrides):
    argument_specs = dict(specs)
    argument_specs.update(overrides)
    records = pf.preflight_inventory_checks(groups, hostvars, argument_specs=argument_specs)
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


def test_ha_site_with_kube_vip_passes(specs):
    records = checks(specs, *site(k8s_cluster=dict(KUBE_VIP, **{G + "kubernetes_version": "1.37.2",
                                                                "kubernetes_node_version": "1.37.2"})))
    assert failed(records) == []
    hosts = ["cp-01", "cp-02", "cp-03", "cpu-01", "cpu-02", "gpu-01", "gpu-02"]
    # one passed record for the cluster-wide checks, one per host for the per-host ones
    consistent, = of(records, "kubernetes_consistent")
    assert consistent["host"] == "inventory"
    # the cluster model's variables (the CRI socket is the cluster's too now; the kubeconfig is the controller's)
    assert consistent["message"] == (
        "inventory: the cluster-wide variables gpuforge_cluster_name, gpuforge_kubernetes_version, "
        "gpuforge_pod_subnet, gpuforge_service_subnet, gpuforge_dns_domain, gpuforge_api_port, gpuforge_ha_mode, "
        "gpuforge_control_plane_endpoint, gpuforge_vip, gpuforge_cri_socket, gpuforge_kubeadm_ignore_preflight_errors "
        "are the same on all 7 host(s) of k8s_cluster")
    endpoint, = of(records, "api_endpoint")
    assert endpoint["message"] == ("inventory: the nodes reach the API at the VIP 10.20.0.10 "
                                   "(gpuforge_ha_mode kube_vip, 3 control plane(s))")
    assert [r["host"] for r in of(records, "node_address_subnet")] == hosts
    assert [r["host"] for r in of(records, "kubernetes_version_skew")] == hosts
    assert of(records, "cni_pod_subnet") == []  # no such check: the CNI's pod subnet is gpuforge_pod_subnet
    gpu = [r for r in of(records, "node_address_subnet") if r["host"] == "gpu-01"][0]
    assert gpu["message"] == (
        "gpu-01: node address(es) 10.30.0.31 (gpuforge_node_ip), 10.20.0.31 (ansible_host) are outside "
        "gpuforge_pod_subnet 10.244.0.0/16 and gpuforge_service_subnet 10.96.0.0/12")
    skew = {r["host"]: r["message"] for r in of(records, "kubernetes_version_skew")}
    assert skew["cp-02"] == ("cp-02: kubeadm and kubelet 1.37.2 (kubernetes_node_version) deploy and run "
                             "gpuforge_kubernetes_version 1.37.2")
    assert skew["cpu-01"] == ("cpu-01: kubelet 1.37.2 (kubernetes_node_version) is within the version skew policy "
                              "of gpuforge_kubernetes_version 1.37.2")


def test_role_defaults_apply_to_a_single_control_plane(specs):
    # Nothing of the Kubernetes layer set: the defaults of the cluster model pass.
    records = checks(specs, *site(control_planes=("cp-01",)))
    assert failed(records) == []
    endpoint, = of(records, "api_endpoint")
    assert endpoint["message"] == ("inventory: the nodes reach the API at the address of cp-01 "
                                   "(gpuforge_ha_mode none, 1 control plane(s))")
    # Changed by design: kubernetes_node_version is a per-host override now, empty by default (every node runs
    # the cluster's release, gpuforge_kubernetes_version), so there is no second default to compare against.
    assert specs["kubernetes_node"]["kubernetes_node_version"]["default"] == ""
    assert specs["cluster_model"][G + "kubernetes_version"]["default"] == "1.37.2"
    assert of(records, "kubernetes_version_skew") == []


def test_the_checks_are_the_cluster_models_not_the_control_plane_roles(specs):
    # Changed by design: these checks judged kubernetes_control_plane's variables and ran only when that role's
    # spec was given. The variables are the cluster model's now, so the checks run without that role's spec
    # and find the same problems as with it.
    groups, hostvars = site(control_planes=("cp-01", "cp-02"), host_vars={"cpu-01": {"gpuforge_node_ip": "10.96.0.9"}})
    without = {role: options for role, options in specs.items() if role != "kubernetes_control_plane"}
    expected = [("inventory", "control_plane_odd", "groups['control_plane']", "error"),
                ("cp-02", "api_endpoint", G + "ha_mode", "error"),
                ("cpu-01", "node_address_subnet", G + "node_ip", "error")]
    assert summary(pf.preflight_inventory_checks(groups, hostvars, argument_specs=without)) == expected
    assert summary(checks(specs, groups, hostvars)) == expected


def test_the_even_control_plane_check_stays(specs):
    records = checks(specs, *site(control_planes=("cp-01", "cp-02"), k8s_cluster=KUBE_VIP))
    assert summary(records) == [("inventory", "control_plane_odd", "groups['control_plane']", "error")]
    assert failed(records)[0]["message"] == (
        "inventory: group control_plane has 2 hosts (cp-01, cp-02); etcd needs an odd number (1, 3, 5) of "
        "control-plane nodes for quorum")
    # without an endpoint both problems are reported
    records = checks(specs, *site(control_planes=("cp-01", "cp-02")))
    assert summary(records) == [("inventory", "control_plane_odd", "groups['control_plane']", "error"),
                                ("cp-02", "api_endpoint", G + "ha_mode", "error")]


# --- 1. cluster-wide variables ----------------------------------------------------


def test_cluster_variables_that_differ_between_hosts(specs):
    groups, hostvars = site(k8s_cluster=KUBE_VIP, host_vars={
        "gpu-01": {G + "pod_subnet": "10.245.0.0/16"},
        "gpu-02": {G + "pod_subnet": "10.245.0.0/16"},
        "cp-03": {G + "api_port": 8443, G + "cluster_name": "gpuforge-b"},
    })
    records = checks(specs, groups, hostvars)
    assert summary(records) == [
        ("cp-03", "kubernetes_consistent", G + "cluster_name", "error"),
        ("gpu-01", "kubernetes_consistent", G + "pod_subnet", "error"),
        ("gpu-02", "kubernetes_consistent", G + "pod_subnet", "error"),
        ("cp-03", "kubernetes_consistent", G + "api_port", "error"),
    ]
    msgs = {(r["host"], r["variable"]): r["message"] for r in failed(records)}
    assert msgs[("gpu-01", G + "pod_subnet")] == (
        "gpu-01: gpuforge_pod_subnet is '10.245.0.0/16' but '10.244.0.0/16' (the default: not set for this host) on "
        "the first control plane cp-01 (values: '10.244.0.0/16' on cp-01, cp-02, cp-03, cpu-01, cpu-02; '10.245.0.0/16' on gpu-01, "
        "gpu-02); kubeadm sets the cluster up once, so every host of k8s_cluster must see the same value: set "
        "gpuforge_pod_subnet once in group_vars/k8s_cluster, not per host or per group")
    port = [r for r in failed(records) if r["variable"] == G + "api_port"][0]
    assert (port["value"], port["expected"]) == (8443, 6443)
    # both sides say where their value comes from now: the reference's is the default here
    assert "is 8443 but 6443 (the default: not set for this host) on the first control plane cp-01 (values: 6443 " \
           "on cp-01, cp-02, cpu-01, cpu-02, gpu-01, gpu-02; 8443 on cp-03)" in port["message"]
    # the same problem of two hosts is one line of the failure message
    report = pf.preflight_report(records, hosts=list(hostvars))
    assert sum("gpu-01, gpu-02: gpuforge_pod_subnet is '10.245.0.0/16'" in line
               for line in report["failure_message"].splitlines()) == 1
    assert not of(records, "kubernetes_consistent")[0]["ok"]  # no passed record next to failures


def test_a_value_set_for_some_groups_only_names_the_default(specs):
    # gpuforge_kubernetes_version set in group_vars/control_plane only: the workers get the default.
    # (kubernetes_node_version no longer has to follow it: its default "" is the cluster's release.)
    default = specs["cluster_model"][G + "kubernetes_version"]["default"]
    other = "1.36.4" if default != "1.36.4" else "1.36.5"
    groups, hostvars = site(k8s_cluster=KUBE_VIP, host_vars={
        h: {G + "kubernetes_version": other} for h in ("cp-01", "cp-02", "cp-03")})
    records = checks(specs, groups, hostvars)
    assert summary(records) == [(h, "kubernetes_consistent", G + "kubernetes_version", "error")
                                for h in ("cpu-01", "cpu-02", "gpu-01", "gpu-02")]
    assert failed(records)[0]["message"].startswith(
        "cpu-01: gpuforge_kubernetes_version is '%s' (the default: not set for this host) but '%s' on the "
        "first control plane cp-01 (values: '%s' on cp-01, cp-02, cp-03; '%s' on cpu-01, cpu-02, gpu-01, gpu-02)"
        % (default, other, other, default))


def test_values_that_failed_their_own_check_are_not_compared(specs):
    groups, hostvars = site(k8s_cluster=KUBE_VIP, host_vars={"cpu-01": {G + "api_port": "lots"},
                                                              "cpu-02": {G + "ha_mode": "keepalived"}})
    records = checks(specs, groups, hostvars)
    assert summary(records) == [("cpu-01", "variable_type", G + "api_port", "error"),
                                ("cpu-02", "variable_choice", G + "ha_mode", "error")]


def test_many_hosts_are_listed_briefly(specs):
    groups, hostvars = site(k8s_cluster=KUBE_VIP)
    for index in range(3, 12):
        host = "gpu-%02d" % index
        groups["k8s_cluster"].append(host)
        groups["workers"].append(host)
        hostvars[host] = dict(hostvars["gpu-01"], inventory_hostname=host, ansible_host="10.20.0.%d" % (30 + index),
                              gpuforge_node_ip="10.30.0.%d" % (30 + index))
    hostvars["gpu-11"][G + "dns_domain"] = "cluster.example"
    rec, = failed(checks(specs, groups, hostvars))
    assert "(values: 'cluster.local' on cp-01, cp-02, cp-03, cpu-01, cpu-02, gpu-01 and 9 more; " \
           "'cluster.example' on gpu-11)" in rec["message"]


# --- 2. node addresses and the pod and service subnets ----------------------------


def test_node_addresses_inside_the_pod_or_service_subnet(specs):
    # (gpu-02 set kubernetes_node_ip, which gpuforge_node_ip replaced)
    groups, hostvars = site(k8s_cluster=dict(KUBE_VIP, **{G + "service_subnet": "10.20.0.0/16"}), host_vars={
        "gpu-01": {"gpuforge_node_ip": "10.244.0.31"},
        "gpu-02": {"gpuforge_node_ip": "10.244.7.32"},
        "cpu-01": {"ansible_host": "node-cpu-01.example.internal"},
    })
    # the VIP is now inside the service subnet: the single-host rule reports it on every host
    records = checks(specs, groups, hostvars)
    subnet = failed(records, "node_address_subnet")
    assert [(r["host"], r["variable"], r["value"]) for r in subnet] == [
        ("cp-01", "ansible_host", "10.20.0.11"), ("cp-02", "ansible_host", "10.20.0.12"),
        ("cp-03", "ansible_host", "10.20.0.13"), ("cpu-02", "ansible_host", "10.20.0.22"),
        ("gpu-01", "gpuforge_node_ip", "10.244.0.31"), ("gpu-01", "ansible_host", "10.20.0.31"),
        ("gpu-02", "gpuforge_node_ip", "10.244.7.32"), ("gpu-02", "ansible_host", "10.20.0.32"),
    ]
    # the VIP inside the service subnet: the cluster model's rule, on every host
    vip = [r for r in failed(records, "variable_rule") if r["variable"] == G + "vip"]
    assert [r["host"] for r in vip] == list(hostvars)
    assert vip[0]["message"] == ("cp-01: gpuforge_vip 10.20.0.10 is inside gpuforge_service_subnet 10.20.0.0/16 "
                                 "(cluster-wide variables)")
    msgs = {(r["host"], r["variable"]): r["message"] for r in subnet}
    assert msgs[("gpu-01", "gpuforge_node_ip")] == (
        "gpu-01: gpuforge_node_ip 10.244.0.31 is inside gpuforge_pod_subnet 10.244.0.0/16: the CNI "
        "routes the pod subnet to pods, so traffic to this node would go astray; choose a "
        "gpuforge_pod_subnet (in group_vars/k8s_cluster) that no node address falls in")
    assert msgs[("cp-01", "ansible_host")] == (
        "cp-01: ansible_host 10.20.0.11 is inside gpuforge_service_subnet 10.20.0.0/16: kube-proxy "
        "captures the service subnet, so traffic to this node would be taken for service traffic; choose a "
        "gpuforge_service_subnet (in group_vars/k8s_cluster) that no node address falls in")
    # a DNS name in ansible_host is not an address: cpu-01 has none the inventory knows, so no record
    assert [r for r in of(records, "node_address_subnet") if r["host"] == "cpu-01"] == []


def test_one_address_in_several_variables_is_reported_once(specs):
    # kubernetes_control_plane_advertise_address was replaced by gpuforge_node_ip (one node address for every
    # role): set, it is refused as renamed and is no address of the host (neither a control plane's nor a
    # worker's)
    groups, hostvars = site(control_planes=("cp-01",), host_vars={
        "cp-01": {"ansible_host": "10.244.1.11", "gpuforge_node_ip": "10.244.1.11",
                  CP + "advertise_address": "10.244.1.11"},
        "cpu-01": {CP + "advertise_address": "10.244.1.21"},
    })
    records = checks(specs, groups, hostvars)
    subnet = failed(records, "node_address_subnet")
    assert len(subnet) == 1
    assert subnet[0]["message"].startswith(
        "cp-01: gpuforge_node_ip and ansible_host 10.244.1.11 is inside gpuforge_pod_subnet 10.244.0.0/16")
    assert [(r["host"], r["variable"], r["expected"]) for r in failed(records, "variable_renamed")] == [
        ("cp-01", CP + "advertise_address", G + "node_ip"), ("cpu-01", CP + "advertise_address", G + "node_ip")]


def test_invalid_subnets_and_addresses_are_left_to_their_own_checks(specs):
    groups, hostvars = site(control_planes=("cp-01",), k8s_cluster={G + "pod_subnet": "10.244.0.0/33"},
                            host_vars={"gpu-01": {"gpuforge_node_ip": "10.30.0.300"}})
    records = checks(specs, groups, hostvars)
    # a rule is not run where a variable it reads failed its own check (variable_rules.rule's reads): the pod
    # subnet's rule reads no node IP, so it judges every host, gpu-01 too
    assert sorted((r["check"], r["variable"]) for r in failed(records)) == [
        ("variable_format", G + "node_ip")] + [("variable_rule", G + "pod_subnet")] * 5
    assert failed(records, "node_address_subnet") == []
    # the service subnet is still checked
    assert of(records, "node_address_subnet")[0]["message"] == (
        "cp-01: node address(es) 10.20.0.11 (ansible_host) are outside gpuforge_service_subnet "
        "10.96.0.0/12")


# --- 3. the API endpoint ----------------------------------------------------------


def test_several_control_planes_without_an_endpoint(specs):
    records = checks(specs, *site())
    # the rule is the cluster model's now (cluster.build's problems, check api_endpoint), reported by preflight
    assert summary(records) == [("cp-02", "api_endpoint", G + "ha_mode", "error"),
                                ("cp-03", "api_endpoint", G + "ha_mode", "error")]
    assert failed(records)[0]["message"] == (
        "cp-02: group control_plane has 3 hosts (cp-01, cp-02, cp-03) but gpuforge_ha_mode is 'none' "
        "and gpuforge_control_plane_endpoint is empty: the control planes that join (cp-02, cp-03) need an API "
        "endpoint they all share; set gpuforge_ha_mode to kube_vip (with "
        "gpuforge_vip and kubernetes_control_plane_kube_vip_image) or external (with "
        "gpuforge_control_plane_endpoint, the load balancer) in group_vars/k8s_cluster")
    report = pf.preflight_report(records, hosts=[])
    assert "- cp-02, cp-03: group control_plane has 3 hosts" in report["failure_message"]


@pytest.mark.parametrize("k8s", [
    {G + "ha_mode": "external", G + "control_plane_endpoint": "k8s-api.example.internal:6443"},
    {G + "ha_mode": "external", G + "control_plane_endpoint": "10.20.0.5"},
    {G + "control_plane_endpoint": "10.20.0.11"},  # none: the first control plane's address, set explicitly
    {G + "control_plane_endpoint": "k8s-api.example.internal"},  # none: a DNS name (round robin) cannot be judged
    dict(KUBE_VIP, **{G + "control_plane_endpoint": "10.20.0.10:6443"}),
])
def test_endpoints_the_nodes_reach(specs, k8s):
    records = checks(specs, *site(k8s_cluster=k8s))
    assert failed(records) == []
    assert of(records, "api_endpoint")[0]["ok"]


def test_an_endpoint_where_nothing_answers(specs):
    records = checks(specs, *site(control_planes=("cp-01",),
                                    k8s_cluster={G + "control_plane_endpoint": "10.20.0.99:6443"}))
    rec, = failed(records)
    assert (rec["host"], rec["check"], rec["variable"], rec["severity"]) == (
        "cp-01", "api_endpoint", G + "control_plane_endpoint", "error")
    assert rec["message"] == (
        "cp-01: gpuforge_control_plane_endpoint 10.20.0.99:6443 is not the address of a control plane (cp-01 "
        "10.20.0.11) and gpuforge_ha_mode is none, so no load balancer or VIP holds it: nothing "
        "would answer there; leave gpuforge_control_plane_endpoint empty (the first control plane's address) or "
        "set it to a control plane's address, or set gpuforge_ha_mode external when a load "
        "balancer answers at 10.20.0.99:6443")
    # a worker's address is no better
    records = checks(specs, *site(control_planes=("cp-01",),
                                    k8s_cluster={G + "control_plane_endpoint": "10.20.0.21"}))
    assert summary(records) == [("cp-01", "api_endpoint", G + "control_plane_endpoint", "error")]


def test_an_endpoint_is_not_judged_when_a_control_plane_address_is_unknown(specs):
    groups, hostvars = site(control_planes=("cp-01",), k8s_cluster={G + "control_plane_endpoint": "10.20.0.99"},
                            host_vars={"cp-01": {"ansible_host": "cp-01.example.internal"}})
    records = checks(specs, groups, hostvars)
    assert failed(records) == []


def test_an_external_endpoint_on_a_control_plane_api_port_is_a_warning(specs):
    k8s = {G + "ha_mode": "external", G + "control_plane_endpoint": "10.20.0.12:6443"}
    rec, = failed(checks(specs, *site(k8s_cluster=k8s)))
    assert (rec["host"], rec["variable"], rec["severity"]) == ("cp-01", G + "control_plane_endpoint", "warning")
    assert rec["message"] == (
        "cp-01: gpuforge_control_plane_endpoint 10.20.0.12:6443 (ha_mode external: the load balancer) is the "
        "address of control plane cp-02 on gpuforge_api_port 6443, where its own API server "
        "listens: the nodes would reach cp-02 only, not a load balancer, and lose the API when it is down; set "
        "gpuforge_control_plane_endpoint to the load balancer")
    # a load balancer on a control plane, on another port, is the site's choice
    k8s[G + "control_plane_endpoint"] = "10.20.0.12:8443"
    assert failed(checks(specs, *site(k8s_cluster=k8s))) == []


def test_the_vip_must_not_be_a_node_address(specs):
    groups, hostvars = site(k8s_cluster=dict(KUBE_VIP, **{G + "vip": "10.30.0.32"}))
    rec, = failed(checks(specs, groups, hostvars))
    assert (rec["host"], rec["check"], rec["variable"], rec["value"]) == (
        "gpu-02", "api_endpoint", G + "vip", "10.30.0.32")
    assert rec["message"] == (
        "gpu-02: gpuforge_vip 10.30.0.32 is the address of this host (gpuforge_node_ip): kube-vip "
        "would take over the node's own address; choose an unused IP address of the control planes' subnet for "
        "gpuforge_vip")


def test_an_endpoint_that_is_not_the_vip_is_reported_once_by_the_rule(specs):
    records = checks(specs, *site(k8s_cluster=dict(KUBE_VIP, **{G + "control_plane_endpoint": "10.20.0.99"})))
    assert {r["check"] for r in failed(records)} == {"variable_rule"}
    assert of(records, "api_endpoint") == []  # no passed record either


# --- 4. version skew --------------------------------------------------------------


# Changed by design: kubernetes_node_version is a per-host override now (empty: the cluster's release); the
# advice for a control plane is to remove the override or take a newer patch of the cluster's minor.
@pytest.mark.parametrize("host,version,message", [
    ("cp-02", "1.36.5",
     "cp-02: kubernetes_node_version 1.36.5 (kubeadm and kubelet of this control plane) is not a 1.37 release like "
     "gpuforge_kubernetes_version 1.37.2: kubeadm sets up the control plane of its own minor only; remove "
     "kubernetes_node_version (the cluster's release applies) or set it to a newer 1.37 patch"),
    ("cp-01", "1.38.0",
     "cp-01: kubernetes_node_version 1.38.0 (kubeadm and kubelet of this control plane) is not a 1.37 release like "
     "gpuforge_kubernetes_version 1.37.2: kubeadm sets up the control plane of its own minor only; remove "
     "kubernetes_node_version (the cluster's release applies) or set it to a newer 1.37 patch"),
    ("cp-03", "1.37.1",
     "cp-03: kubernetes_node_version 1.37.1 (kubeadm of this control plane) is older than "
     "gpuforge_kubernetes_version 1.37.2: kubeadm cannot deploy a control plane newer than itself; remove "
     "kubernetes_node_version (the cluster's release applies) or set it to a newer 1.37 patch"),
    ("cp-03", "1.37.3", None),
    ("cpu-01", "1.38.0",
     "cpu-01: kubernetes_node_version 1.38.0 (the kubelet) is newer than gpuforge_kubernetes_version 1.37.2: a "
     "kubelet must not be newer than the API server (Kubernetes version skew policy); set kubernetes_node_version "
     "to a 1.37 release or older (down to 1.34)"),
    ("gpu-02", "1.33.9",
     "gpu-02: kubernetes_node_version 1.33.9 (the kubelet) is 4 minor versions older than "
     "gpuforge_kubernetes_version 1.37.2: the Kubernetes version skew policy allows a kubelet at most 3 minors "
     "older than the API server; set kubernetes_node_version to a release from 1.34 to 1.37"),
    ("gpu-02", "2.37.2",
     "gpu-02: kubernetes_node_version 2.37.2 (the kubelet) is not a 1.x release like "
     "gpuforge_kubernetes_version 1.37.2; set kubernetes_node_version to a release from 1.34 to 1.37"),
    ("gpu-02", "1.34.0", None),
    ("cpu-02", "1.37.9", None),  # a newer patch: the policy compares minors
])
def test_version_skew(specs, host, version, message):
    # the override on one host only; the others run the cluster's release
    k8s = dict(KUBE_VIP, **{G + "kubernetes_version": "1.37.2"})
    groups, hostvars = site(k8s_cluster=k8s, host_vars={host: {"kubernetes_node_version": version}})
    records = checks(specs, groups, hostvars)
    skew = of(records, "kubernetes_version_skew")
    assert [r["host"] for r in skew] == [host]  # hosts without an override are not judged
    if message is None:
        assert failed(records) == []
        assert skew[0]["ok"]
        return
    rec, = failed(records)
    assert (rec["host"], rec["check"], rec["variable"], rec["value"], rec["severity"]) == (
        host, "kubernetes_version_skew", "kubernetes_node_version", version, "error")
    assert rec["message"] == message


def test_version_skew_skips_what_is_not_a_release(specs):
    k8s = dict(KUBE_VIP, **{G + "kubernetes_version": "1.37.2", "kubernetes_node_version": "1.37.2"})
    groups, hostvars = site(k8s_cluster=k8s, host_vars={"cpu-01": {"kubernetes_node_version": "v1.37"}})
    records = checks(specs, groups, hostvars)
    assert summary(records) == [("cpu-01", "variable_rule", "kubernetes_node_version", "error")]
    assert "cpu-01" not in [r["host"] for r in of(records, "kubernetes_version_skew")]
    k8s[G + "kubernetes_version"] = "1.37"  # the rule reports it on every host; nothing to compare against
    records = checks(specs, *site(k8s_cluster=k8s))
    assert of(records, "kubernetes_version_skew") == []
    assert {r["check"] for r in failed(records)} == {"variable_rule"}
    assert {r["variable"] for r in failed(records)} == {G + "kubernetes_version"}


def test_version_skew_needs_an_override(specs):
    # Changed by design: the skew was judged whenever the kubernetes_node role's spec was given (its
    # kubernetes_node_version had a default of its own). Now only an override set for a host is judged,
    # with or without that role's spec: the cluster's release needs no skew check.
    no_node = {role: options for role, options in specs.items() if role != "kubernetes_node"}
    groups, hostvars = site(k8s_cluster=KUBE_VIP)
    for argument_specs in (no_node, specs):
        records = pf.preflight_inventory_checks(groups, hostvars, argument_specs=argument_specs)
        assert of(records, "kubernetes_version_skew") == []
        assert failed(records) == []
    hostvars["gpu-01"]["kubernetes_node_version"] = "1.36.1"
    skew, = of(checks(specs, groups, hostvars), "kubernetes_version_skew")
    assert (skew["host"], skew["ok"]) == ("gpu-01", True)


# --- 5. cni_pod_subnet ------------------------------------------------------------


def test_cni_pod_subnet_is_refused_as_renamed(specs):
    # Changed by design: this checked that cni_pod_subnet equals the cluster's pod subnet. There is one pod
    # subnet now, gpuforge_pod_subnet (the cni role reads the cluster model's); cni_pod_subnet is no longer a
    # variable, and setting it anywhere is refused, naming its replacement.
    k8s = dict(KUBE_VIP, cni_pod_subnet="10.244.0.0/16")
    groups, hostvars = site(k8s_cluster=k8s, host_vars={"cp-02": {"cni_pod_subnet": "10.42.0.0/16"}})
    records = checks(specs, groups, hostvars)
    assert [(r["host"], r["check"], r["variable"], r["expected"]) for r in failed(records)] == [
        (host, "variable_renamed", "cni_pod_subnet", G + "pod_subnet") for host in hostvars]
    msgs = {r["host"]: r["message"] for r in failed(records)}
    assert msgs["cp-02"] == (
        "cp-02: cni_pod_subnet is no longer a variable: it was replaced by gpuforge_pod_subnet (the cluster model: "
        "set it once, in group_vars/k8s_cluster)")
    assert of(records, "cni_pod_subnet") == []


def test_the_pod_subnet_is_one_the_cni_accepts_when_a_cni_is_installed(specs):
    # What the cni role refused after kubeadm init had built the cluster (a /25 pod subnet) is refused before any
    # host is contacted, unless cni_plugin is none (no CNI of gpuforge's); no cni_pod_subnet check is left.
    for k8s, refused in (({}, True), ({"cni_plugin": "none"}, False)):
        records = checks(specs, *site(k8s_cluster=dict(KUBE_VIP, **{G + "pod_subnet": "10.244.0.0/25"}, **k8s)))
        assert of(records, "cni_pod_subnet") == []
        if not refused:
            assert failed(records) == []
            continue
        assert {(r["check"], r["variable"]) for r in failed(records)} == {("variable_rule", G + "pod_subnet")}
        assert failed(records)[0]["message"] == (
            "cp-01: gpuforge_pod_subnet '10.244.0.0/25' is a /25: the pod network must be between a /8 and a /24 "
            "(each node takes a /24 of it with Flannel and Cilium, /26 blocks with Calico); the cni role (cni_plugin "
            "calico) would refuse it after kubeadm init built the cluster (cluster-wide variables)")


# --- report -----------------------------------------------------------------------


def test_the_new_checks_are_inventory_checks_in_the_report(specs):
    groups, hostvars = site(k8s_cluster=dict(KUBE_VIP, kubernetes_node_version="1.37.2"))
    records = checks(specs, groups, hostvars)
    assert {r["check"] for r in records} >= set(NEW_CHECKS)
    assert set(NEW_CHECKS) | {"variable_rule", "variable_renamed"} <= preflight_report.INVENTORY_CHECKS
    # gpu-02 dropped out of the play before its host checks: its inventory records do not hide that
    hosts = list(hostvars)
    report = pf.preflight_report(records, hosts=hosts, active_hosts=[h for h in hosts if h != "gpu-02"])
    assert report["errors"] == ["gpu-02: host dropped out of the play (failed or unreachable) before its checks ran"]


class Exploding(dict):
    """hostvars whose templated value fails, like `"{{ undefined }}"` does."""

    def __getitem__(self, key):
        if key == G + "control_plane_endpoint":
            raise RuntimeError("'lb_address' is undefined")
        return super().__getitem__(key)


def test_a_variable_that_cannot_be_evaluated_is_skipped(specs):
    groups, hostvars = site(control_planes=("cp-01",))
    hostvars["cp-01"] = Exploding(hostvars["cp-01"], **{G + "control_plane_endpoint": "{{ lb_address }}"})
    records = checks(specs, groups, hostvars)
    assert summary(records) == [("cp-01", "variable_template", G + "control_plane_endpoint", "error")]
