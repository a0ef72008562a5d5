"""Rules between a role's variables (plugins/module_utils/variable_rules.py): the filter the roles use
and the preflight inventory check that runs them for every host before any host is contacted."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf
from ansible_collections.gpuforge.cluster.plugins.filter.role_variables import role_variable_errors_filter as errors
from ansible_collections.gpuforge.cluster.plugins.module_utils import variable_rules as vr

from conftest import ROOT

SHA = "e9a8812ccf2b9e27c85de837d244c14ec4d7d6dcd0f9d87c0202297b8f9090c1"


@pytest.mark.parametrize("values, expected", [
    ({"containerd_install_method": "distro", "containerd_version": "1.6.20~ds1-1+deb12u1"}, []),
    ({"containerd_install_method": "archive", "containerd_version": "2.2.9", "containerd_archive_dir": "/srv/a",
      "containerd_archive_sha256": SHA}, []),
    ({"containerd_install_method": "archive", "containerd_version": "2.2.9",
      "containerd_archive_url": "https://mirror.site.internal/containerd"}, []),
    ({"containerd_install_method": "archive", "containerd_version": "v2.2", "containerd_archive_dir": "/srv/a"},
     ["containerd_install_method archive needs containerd_version as X.Y.Z (the release, e.g. 2.2.9), got 'v2.2'"]),
    ({"containerd_install_method": "archive", "containerd_version": "2.2.9"},
     ["containerd_install_method archive needs containerd_archive_dir (an offline folder) or containerd_archive_url "
      "(a mirror)"]),
    ({"containerd_archive_url": "mirror/containerd"}, ["containerd_archive_url 'mirror/containerd' is not an http(s) "
                                                       "or file URL"]),
    ({"containerd_archive_sha256": "abc"}, ["containerd_archive_sha256 'abc' is not a SHA-256 (64 hex digits)"]),
    ({"containerd_registry_mirrors": [{"registry": "r.site", "endpoints": ["https://m"]},
                                      {"registry": "r.site", "endpoints": ["https://n"]}]},
     ["containerd_registry_mirrors lists r.site more than once"]),
    ({"containerd_registry_mirrors": [{"registry": "r/site", "endpoints": []}]},
     ["containerd_registry_mirrors[0].registry 'r/site' is not a registry host[:port] or _default",
      "containerd_registry_mirrors[0] (r/site) needs endpoints that are http(s) URLs"]),
    ({"containerd_registry_mirrors": [{"registry": "_default", "endpoints": ["ftp://m"]}]},
     ["containerd_registry_mirrors[0] (_default) needs endpoints that are http(s) URLs, got ['ftp://m']"]),
])
def test_containerd_rules(values, expected):
    assert errors(values, "containerd") == expected


@pytest.mark.parametrize("values, expected", [
    ({"kubernetes_node_version": "1.37.2", "kubernetes_node_install_method": "repo"}, []),
    ({"kubernetes_node_version": "1.37.2", "kubernetes_node_install_method": "binaries",
      "kubernetes_node_binaries_dir": "/srv/k8s", "kubernetes_node_ip": "fd00::31"}, []),
    ({"kubernetes_node_version": "1.37"}, ["kubernetes_node_version '1.37' is not a release such as '1.37.2' "
                                           "(X.Y.Z, no 'v')"]),
    ({"kubernetes_node_version": "1.37.2", "kubernetes_node_install_method": "binaries"},
     ["kubernetes_node_install_method binaries needs kubernetes_node_binaries_dir (the folder of kubeadm, kubelet "
      "and kubectl)"]),
    ({"kubernetes_node_version": "1.37.2", "kubernetes_node_ip": "10.1.2"},
     ["kubernetes_node_ip '10.1.2' is not an IP address"]),
])
def test_kubernetes_node_rules(values, expected):
    assert errors(values, "kubernetes_node") == expected


def test_filter_input_errors():
    with pytest.raises(AnsibleFilterError, match="no rules for role 'common'"):
        errors({}, "common")
    with pytest.raises(AnsibleFilterError, match="values must be a dict"):
        errors(["containerd_version"], "containerd")
    assert set(vr.RULES) == {"containerd", "kubernetes_node", "kubernetes_control_plane"}


def test_preflight_runs_the_rules_with_the_defaults_applied():
    specs = pf.preflight_load_argument_specs(ROOT / "roles")
    groups = {"all": ["cp1", "w1"], "k8s_cluster": ["cp1", "w1"], "control_plane": ["cp1"], "workers": ["w1"]}
    hostvars = {"cp1": {"containerd_install_method": "archive"}, "w1": {}}
    failed = [r for r in pf.preflight_inventory_checks(groups, hostvars, specs, {}, {}) if not r["ok"]]
    assert [(r["host"], r["check"], r["variable"]) for r in failed] == [
        ("cp1", "variable_rule", "containerd_version"), ("cp1", "variable_rule", "containerd_archive_dir")]
    assert failed[0]["message"].endswith("got '' (role containerd)")  # containerd_version's default


def test_preflight_does_not_judge_rules_of_a_variable_that_failed_its_type():
    specs = pf.preflight_load_argument_specs(ROOT / "roles")
    groups = {"all": ["cp1"], "k8s_cluster": ["cp1"], "control_plane": ["cp1"]}
    hostvars = {"cp1": {"containerd_registry_mirrors": "r.site=https://m"}}
    failed = [r for r in pf.preflight_inventory_checks(groups, hostvars, specs, {}, {}) if not r["ok"]]
    checks = [r["check"] for r in failed]
    assert checks and "variable_rule" not in checks  # its own checks failed (key=value string): no rule noise
