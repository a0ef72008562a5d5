"""Preflight's checks across hosts that need facts (plugins/module_utils/preflight_hosts.py, through the filters
preflight_identity and preflight_cross_host_checks): what one host's facts say about it, and, with
gpuforge_ha_mode kube_vip, whether the VIP is in a network every control plane is on and on an interface each
of them has. The facts are trimmed copies of what ansible.builtin.setup returns on Ubuntu 22.04 VMs (an
interface named vxlan.calico is the fact vxlan_calico; the leader of kube-vip holds the VIP as a /32
secondary address). The checks of one host's facts are in test_filter_preflight.py."""

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf
from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, cluster, preflight_hosts

from conftest import ROOT

SPECS = argspec.load_argument_specs(ROOT / "roles")


def vm_facts(hostname, address, v6=None, interface="ens5", vip=None):
    """ansible_facts of a VM with its address on `interface`, a CNI interface, and loopback."""
    facts = {
        "hostname": hostname,
        "interfaces": ["lo", interface, "vxlan.calico"],
        "default_ipv4": {"address": address, "alias": interface, "gateway": "10.20.0.1", "interface": interface,
                         "netmask": "255.255.255.0", "network": "10.20.0.0", "prefix": "24", "type": "ether"},
        "lo": {"device": "lo", "active": True, "type": "loopback",
               "ipv4": {"address": "127.0.0.1", "broadcast": "", "netmask": "255.0.0.0", "network": "127.0.0.0",
                        "prefix": "8"},
               "ipv6": [{"address": "::1", "prefix": "128", "scope": "host"}]},
        interface: {"device": interface, "active": True, "type": "ether",
                    "ipv4": {"address": address, "broadcast": "10.20.0.255", "netmask": "255.255.255.0",
                             "network": "10.20.0.0", "prefix": "24"},
                    "ipv6": [{"address": "fe80::5054:ff:fe12:3456", "prefix": "64", "scope": "link"}]},
        "vxlan_calico": {"device": "vxlan.calico", "active": True, "type": "ether",
                         "ipv4": {"address": "10.244.12.0", "broadcast": "", "netmask": "255.255.255.255",
                                  "network": "10.244.12.0", "prefix": "32"}},
    }
    if v6:
        facts[interface]["ipv6"].insert(0, {"address": v6, "prefix": "64", "scope": "global"})
    if vip:
        facts[interface]["ipv4_secondaries"] = [{"address": vip, "broadcast": "", "netmask": "255.255.255.255",
                                                 "network": vip, "prefix": "32"}]
    return facts


CPS = {"cp-01": "10.20.0.11", "cp-02": "10.20.0.12", "cp-03": "10.20.0.13"}


def model(ha_mode="kube_vip", vip="10.20.0.10"):
    hosts = list(CPS) + ["gpu-01"]
    groups = {"all": hosts, "k8s_cluster": hosts, "control_plane": list(CPS), "workers": ["gpu-01"],
              "gpu_workers": ["gpu-01"]}
    k8s = {"gpuforge_ha_mode": ha_mode, "gpuforge_vip": vip} if ha_mode == "kube_vip" else {
        "gpuforge_ha_mode": ha_mode, "gpuforge_control_plane_endpoint": "k8s-api.example.internal"}
    hostvars = {h: dict(k8s, inventory_dir="/srv/site") for h in hosts}
    built, problems = cluster.build(groups, hostvars, SPECS)
    assert problems == []
    return built


def identities(**facts):
    out = {host: pf.preflight_identity(vm_facts(host, address), address) for host, address in CPS.items()}
    out["gpu-01"] = pf.preflight_identity(vm_facts("gpu-01", "10.20.0.31"), "10.30.0.31")
    for host, f in facts.items():
        out[host] = pf.preflight_identity(f, CPS.get(host)) if f else {}
    return out


def of(records, check):
    return [r for r in records if r["check"] == check]


# --- identity ---------------------------------------------------------------------------------


def test_identity_of_a_vm():
    got = preflight_hosts.identity(vm_facts("cp-01", "10.20.0.11", v6="fd00:20::11", vip="10.20.0.10"), "10.20.0.11")
    assert got == {
        "hostname": "cp-01",
        "node_ip": "10.20.0.11",
        "interfaces": ["lo", "ens5", "vxlan.calico"],
        "default_interface": "ens5",
        # IPv4 and secondaries (the VIP the leader holds, a /32), global IPv6 only (no link-local, no ::1)
        "networks": ["127.0.0.0/8", "10.20.0.0/24", "10.20.0.10/32", "fd00:20::/64", "10.244.12.0/32"],
    }


def test_identity_without_a_default_route_or_addresses():
    facts = {"hostname": "gf-lab-w1", "interfaces": ["lo", "eth0"], "eth0": {"device": "eth0"},
             "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}}}
    assert preflight_hosts.identity(facts) == {"hostname": "gf-lab-w1", "node_ip": "", "interfaces": ["lo", "eth0"],
                                               "default_interface": "", "networks": ["127.0.0.0/8"]}
    # an interface whose facts are missing or odd is skipped
    facts = {"hostname": "h", "interfaces": ["bond0.100", "weird"], "weird": "text"}
    assert preflight_hosts.identity(facts)["networks"] == []
    with pytest.raises(AnsibleFilterError, match="facts must be a dict"):
        pf.preflight_identity(["not", "facts"])


def test_identity_of_a_host_address_with_host_bits():
    # an address and its netmask: the network of the interface, not a strict network
    facts = {"hostname": "h", "interfaces": ["eth0"],
             "eth0": {"ipv4": {"address": "192.168.7.77", "netmask": "255.255.252.0"}}}
    assert preflight_hosts.identity(facts)["networks"] == ["192.168.4.0/22"]


# --- the VIP ----------------------------------------------------------------------------------


def test_a_vip_in_the_control_planes_network_on_their_default_interface():
    records = pf.preflight_cross_host_checks(identities(), model(), {})
    assert [r for r in records if not r["ok"]] == []
    assert [(r["host"], r["message"]) for r in of(records, "vip_network")] == [
        (h, "%s: gpuforge_vip 10.20.0.10 is in the control plane's network 10.20.0.0/24" % h) for h in CPS]
    assert [(r["host"], r["value"], r["message"]) for r in of(records, "vip_interface")] == [
        (h, "ens5", "%s: kube-vip announces the VIP on ens5" % h) for h in CPS]
    # the worker is no control plane: no VIP records
    assert "gpu-01" not in [r["host"] for r in records if r["check"].startswith("vip_")]


def test_a_vip_in_no_network_of_a_control_plane():
    # cp-03 is on another network (a routed rack): kube-vip's ARP cannot move the VIP there
    other = vm_facts("cp-03", "10.21.0.13")
    other["ens5"]["ipv4"].update(network="10.21.0.0", broadcast="10.21.0.255")
    records = pf.preflight_cross_host_checks(identities(**{"cp-03": other}), model(), {})
    bad = [r for r in records if not r["ok"]]
    assert [(r["host"], r["check"], r["variable"], r["severity"]) for r in bad] == [
        ("cp-03", "vip_network", "gpuforge_vip", "error")]
    assert bad[0]["message"] == (
        "cp-03: gpuforge_vip 10.20.0.10 is in no network of this control plane (it has 127.0.0.0/8, 10.21.0.0/24, "
        "10.244.12.0/32): kube-vip announces the VIP with ARP on the control planes' own network, so nothing would "
        "reach it; choose an unused address of that network")


def test_the_vip_held_as_a_32_is_no_network_of_the_host():
    # the leader holds the VIP itself (a /32 secondary): that is not a network the VIP is announced in
    leader = vm_facts("cp-01", "10.21.0.11", vip="10.20.0.10")
    leader["ens5"]["ipv4"].update(network="10.21.0.0")
    records = pf.preflight_cross_host_checks(identities(**{"cp-01": leader}), model(), {})
    assert [(r["host"], r["check"]) for r in records if not r["ok"]] == [("cp-01", "vip_network")]


def test_the_vip_interface_must_be_an_interface_of_each_control_plane():
    records = pf.preflight_cross_host_checks(identities(), model(), {"cp-01": "ens6", "cp-02": "", "cp-03": "ens5"})
    bad = [r for r in records if not r["ok"]]
    assert [(r["host"], r["check"], r["variable"], r["value"]) for r in bad] == [
        ("cp-01", "vip_interface", "kubernetes_control_plane_vip_interface", "ens6")]
    assert bad[0]["message"] == (
        "cp-01: kubernetes_control_plane_vip_interface 'ens6' is not an interface of this control plane (it has ens5, "
        "lo, vxlan.calico); set it to the interface of the control planes' network")
    # empty: the default route's, here ens5
    assert [r["value"] for r in of(records, "vip_interface") if r["host"] == "cp-02"] == ["ens5"]


def test_no_default_route_and_no_vip_interface():
    facts = vm_facts("cp-02", "10.20.0.12")
    del facts["default_ipv4"]
    records = pf.preflight_cross_host_checks(identities(**{"cp-02": facts}), model(), None)
    bad = [r for r in records if not r["ok"]]
    assert [(r["host"], r["check"]) for r in bad] == [("cp-02", "vip_interface")]
    assert bad[0]["message"].startswith("cp-02: kubernetes_control_plane_vip_interface '(none: no default route)' is "
                                        "not an interface of this control plane")


def test_an_ipv6_vip():
    facts = {h: vm_facts(h, a, v6="fd00:20::%s" % a.rsplit(".", 1)[1]) for h, a in CPS.items()}
    ids = {h: pf.preflight_identity(f, CPS[h]) for h, f in facts.items()}
    records = pf.preflight_cross_host_checks(ids, model(vip="fd00:20::10"), {})
    assert [r for r in records if not r["ok"]] == []
    assert of(records, "vip_network")[0]["message"] == (
        "cp-01: gpuforge_vip fd00:20::10 is in the control plane's network fd00:20::/64")


def test_no_vip_checks_without_kube_vip_or_facts():
    assert of(pf.preflight_cross_host_checks(identities(), model(ha_mode="external"), {}), "vip_network") == []
    assert of(pf.preflight_cross_host_checks(identities(), None, {}), "vip_network") == []
    # a control plane without facts (unreachable: its own record says so) is skipped
    records = pf.preflight_cross_host_checks(identities(**{"cp-02": None}), model(), {})
    assert [r["host"] for r in of(records, "vip_network")] == ["cp-01", "cp-03"]
    # a VIP that is no address is the variable rules' to report
    broken = copy.deepcopy(model())
    broken["api"]["vip"] = "10.20.0"
    assert of(pf.preflight_cross_host_checks(identities(), broken, {}), "vip_network") == []


def test_hostnames_and_node_ips_stay_unique_with_a_model():
    ids = identities()
    ids["cp-02"]["node_ip"] = "10.20.0.11"
    ids["gpu-01"]["hostname"] = "CP-03"
    bad = [r for r in pf.preflight_cross_host_checks(ids, model(), {}) if not r["ok"]]
    assert sorted((r["host"], r["check"]) for r in bad) == [
        ("cp-01", "node_ip_unique"), ("cp-02", "node_ip_unique"), ("cp-03", "hostname_unique"),
        ("gpu-01", "hostname_unique")]
