"""Rules between a role's variables (plugins/module_utils/variable_rules.py), of every role and of the
cluster-wide gpuforge_* variables (role cluster_model): the filter the roles use
(``values | role_variable_errors(role)``, defaults from the argument specs applied) and the preflight
inventory check that runs them for every host before any host is contacted."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf
from ansible_collections.gpuforge.cluster.plugins.filter.role_variables import role_variable_errors_filter as errors
from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec
from ansible_collections.gpuforge.cluster.plugins.module_utils import variable_rules as vr

from conftest import ROOT

SHA = "e9a8812ccf2b9e27c85de837d244c14ec4d7d6dcd0f9d87c0202297b8f9090c1"
SPECS = argspec.load_argument_specs(ROOT / "roles")
ROLES = sorted(SPECS)


# --- containerd -------------------------------------------------------------------------------

# Changed by design: an archive needs containerd_archive_sha256 now (every downloaded or copied archive is
# checked), so the cases that were valid without one carry it; plain http is refused unless
# gpuforge_allow_http_downloads says so.
@pytest.mark.parametrize("values, expected", [
    ({"containerd_install_method": "distro", "containerd_version": "1.6.20~ds1-1+deb12u1"}, []),
    ({"containerd_install_method": "archive", "containerd_version": "2.2.9", "containerd_archive_dir": "/srv/a",
      "containerd_archive_sha256": SHA}, []),
    ({"containerd_install_method": "archive", "containerd_version": "2.2.9",
      "containerd_archive_url": "https://mirror.site.internal/containerd", "containerd_archive_sha256": SHA}, []),
    ({"containerd_install_method": "archive", "containerd_version": "v2.2", "containerd_archive_dir": "/srv/a",
      "containerd_archive_sha256": SHA},
     ["containerd_install_method archive needs containerd_version as X.Y.Z (the release, e.g. 2.2.9), got 'v2.2'"]),
    ({"containerd_install_method": "archive", "containerd_version": "2.2.9", "containerd_archive_sha256": SHA},
     ["containerd_install_method archive needs containerd_archive_dir (an offline folder) or containerd_archive_url "
      "(a mirror)"]),
    ({"containerd_install_method": "archive", "containerd_version": "2.2.9", "containerd_archive_dir": "/srv/a"},
     ["containerd_install_method archive needs containerd_archive_sha256, the SHA-256 of the release archive (every "
      "downloaded or copied archive is checked)"]),
    ({"containerd_archive_url": "mirror/containerd"}, ["containerd_archive_url 'mirror/containerd' is not an https, "
                                                       "http or file URL"]),
    ({"containerd_archive_url": "http://mirror.site.internal/containerd"},
     ["containerd_archive_url 'http://mirror.site.internal/containerd' is plain http: release archives must come over "
      "https (set gpuforge_allow_http_downloads: true only for a site mirror without TLS; the SHA-256 still protects "
      "them)"]),
    ({"containerd_archive_url": "http://mirror.site.internal/containerd", "gpuforge_allow_http_downloads": True}, []),
    ({"containerd_archive_url": "file:///srv/containerd"}, []),
    ({"containerd_archive_sha256": "abc"}, ["containerd_archive_sha256 'abc' is not a SHA-256 (64 hex digits)"]),
    ({"containerd_install_method": "distro", "containerd_version": "v1.6"},
     ["containerd_version 'v1.6' is not a package version (it starts with a digit, e.g. 1.6.20~ds1-1+deb12u1; "
      "empty keeps the repository's)"]),
    ({"containerd_sandbox_image": "registry.k8s.io/pause 3.10"},
     ["containerd_sandbox_image 'registry.k8s.io/pause 3.10' is not an image reference (registry/repository:tag)"]),
    ({"containerd_registry_mirrors": [{"registry": "r.site", "endpoints": ["https://m"]},
                                      {"registry": "r.site", "endpoints": ["https://n"]}]},
     ["containerd_registry_mirrors lists r.site more than once"]),
    ({"containerd_registry_mirrors": [{"registry": "r/site", "endpoints": []}]},
     ["containerd_registry_mirrors[0].registry 'r/site' is not a registry host[:port] or _default",
      "containerd_registry_mirrors[0] (r/site) needs endpoints that are http(s) URLs"]),
    ({"containerd_registry_mirrors": [{"registry": "_default", "endpoints": ["ftp://m"]}]},
     ["containerd_registry_mirrors[0] (_default) needs endpoints that are http(s) URLs, got ['ftp://m']"]),
    ({"containerd_image_archives_dir": "/srv/images", "containerd_image_archives": ["cp.tar", "node/pause.tar"]}, []),
    ({"containerd_image_archives_dir": "images"},
     ["containerd_image_archives_dir 'images' is not an absolute path (a folder on the controller)"]),
    ({"containerd_image_archives": ["cp.tar"]},
     ["containerd_image_archives needs containerd_image_archives_dir, the folder on the controller that holds them"]),
    ({"containerd_image_archives_dir": "/srv/images", "containerd_image_archives": ["/srv/cp.tar", "../x.tar", ""]},
     ["containerd_image_archives names paths inside containerd_image_archives_dir, as its SHA256SUMS lists them, "
      "got '/srv/cp.tar', '../x.tar', ''"]),
])
def test_containerd_rules(values, expected):
    assert errors(values, "containerd") == expected


# --- kubernetes_node --------------------------------------------------------------------------

SUMS = {"kubeadm": SHA, "kubelet": SHA, "kubectl": SHA}


# Changed by design: kubernetes_node_version is a per-host override (empty: the cluster's release); binaries
# need their SHA-256s; kubernetes_node_ip is gone (gpuforge_node_ip, see test_the_node_ip_is_the_cluster_models).
@pytest.mark.parametrize("values, expected", [
    ({"kubernetes_node_version": "1.37.2", "kubernetes_node_install_method": "repo"}, []),
    ({"kubernetes_node_version": "", "kubernetes_node_install_method": "repo"}, []),
    ({"kubernetes_node_version": "1.37.2", "kubernetes_node_install_method": "binaries",
      "kubernetes_node_binaries_dir": "/srv/k8s", "kubernetes_node_binaries_sha256": SUMS}, []),
    ({"kubernetes_node_version": "1.37"}, ["kubernetes_node_version '1.37' is not a release such as '1.37.2' "
                                           "(X.Y.Z, no 'v'; empty: gpuforge_kubernetes_version)"]),
    ({"kubernetes_node_version": "v1.37.2"}, ["kubernetes_node_version 'v1.37.2' is not a release such as '1.37.2' "
                                              "(X.Y.Z, no 'v'; empty: gpuforge_kubernetes_version); drop the 'v'"]),
    ({"kubernetes_node_version": 1.3}, ["kubernetes_node_version 1.3 is not a release such as '1.37.2' (X.Y.Z, no "
                                        "'v'; empty: gpuforge_kubernetes_version); YAML read the number 1.3: quote "
                                        "the release"]),
    ({"kubernetes_node_version": "1.37.2", "kubernetes_node_install_method": "binaries",
      "kubernetes_node_binaries_sha256": SUMS},
     ["kubernetes_node_install_method binaries needs kubernetes_node_binaries_dir (the folder of kubeadm, kubelet "
      "and kubectl)"]),
    ({"kubernetes_node_install_method": "binaries", "kubernetes_node_binaries_dir": "/srv/k8s",
      "kubernetes_node_binaries_sha256": {"kubeadm": SHA}},
     ["kubernetes_node_install_method binaries needs kubernetes_node_binaries_sha256 with the SHA-256 of kubelet, "
      "kubectl (every copied binary is checked)"]),
    ({"kubernetes_node_install_method": "binaries", "kubernetes_node_binaries_dir": "/srv/k8s",
      "kubernetes_node_binaries_sha256": dict(SUMS, kubelet="abc", kubeproxy=SHA)},
     ["kubernetes_node_binaries_sha256: kubelet is not a SHA-256 (64 hex digits)",
      "kubernetes_node_binaries_sha256 has unknown keys kubeproxy (kubeadm, kubelet, kubectl)"]),
    ({"kubernetes_node_apt_repo_url": "http://mirror.site.internal/k8s"},
     ["kubernetes_node_apt_repo_url 'http://mirror.site.internal/k8s' is plain http: packages and signing keys must "
      "come over https (set gpuforge_allow_http_downloads: true only for a site mirror without TLS; the SHA-256 "
      "still protects them)"]),
    ({"kubernetes_node_kubelet_extra_args": {"max-pods": 200, "--bad flag": 1}},
     ["the keys of kubernetes_node_kubelet_extra_args must be kubelet flag names (got --bad flag)"]),
])
def test_kubernetes_node_rules(values, expected):
    assert errors(values, "kubernetes_node") == expected


def test_the_node_ip_is_the_cluster_models():
    # kubernetes_node_ip '10.1.2' was refused by kubernetes_node's rules; gpuforge_node_ip replaced it, and its
    # format is a constraint of the cluster-wide variables (variable_rules.CONSTRAINTS)
    assert errors({"gpuforge_node_ip": "10.1.2"}, "cluster_model") == ["gpuforge_node_ip '10.1.2' is not an IP address"]
    assert errors({"gpuforge_node_ip": "fd00::31"}, "cluster_model") == []


# --- the cluster-wide variables (cluster_model) -----------------------------------------------


@pytest.mark.parametrize("values, expected", [
    ({}, []),
    ({"gpuforge_cluster_name": "a" * 100},
     ["gpuforge_cluster_name is 100 characters long, more than the 63 allowed",
      "gpuforge_cluster_name '%s' is not a DNS-1123 label: it is too long (100 characters; at most 63) (kubeadm and "
      "the kubeconfig use it as a name)" % ("a" * 100)]),
    ({"gpuforge_cluster_name": "GPU_Lab"},
     ["gpuforge_cluster_name 'GPU_Lab' is not a DNS-1123 label: it has uppercase letters and has characters other "
      "than a-z, 0-9, '-' ('_') (kubeadm and the kubeconfig use it as a name)"]),
    ({"gpuforge_cluster_name": "gpu.lab"},
     ["gpuforge_cluster_name 'gpu.lab' is not a DNS-1123 label: it has characters other than a-z, 0-9, '-' ('.') "
      "(kubeadm and the kubeconfig use it as a name)"]),
    ({"gpuforge_kubernetes_version": "latest"},
     ["gpuforge_kubernetes_version 'latest' is not a release such as '1.37.2' (X.Y.Z, no 'v')"]),
    ({"gpuforge_kubernetes_version": 1.3},
     ["gpuforge_kubernetes_version 1.3 is not a release such as '1.37.2' (X.Y.Z, no 'v'); YAML read the number 1.3: "
      "quote the release"]),
    ({"gpuforge_service_subnet": "fd00:10:96::/112"},
     ["gpuforge_service_subnet fd00:10:96::/112 is IPv6 but gpuforge_pod_subnet 10.244.0.0/16 is IPv4: both must be "
      "of one IP family (dual-stack is not supported)"]),
    ({"gpuforge_pod_subnet": "10.244.0.0/25"},
     ["gpuforge_pod_subnet '10.244.0.0/25' is a /25: the pod network must be between a /8 and a /24 (each node takes "
      "a /24 of it with Flannel and Cilium, /26 blocks with Calico); the cni role (cni_plugin calico) would refuse it "
      "after kubeadm init built the cluster"]),
    ({"gpuforge_pod_subnet": "fd00:10:244::/56", "gpuforge_service_subnet": "fd00:10:96::/112"},
     ["gpuforge_pod_subnet 'fd00:10:244::/56' is not an IPv4 network (the CNI sets up one IPv4 pod network); the cni "
      "role (cni_plugin calico) would refuse it after kubeadm init built the cluster"]),
    # without a CNI of gpuforge's the pod network is the site's to judge
    ({"gpuforge_pod_subnet": "10.244.0.0/25", "cni_plugin": "none"}, []),
    ({"gpuforge_dns_domain": "cluster local"}, ["gpuforge_dns_domain 'cluster local' is not a DNS domain"]),
    ({"gpuforge_api_port": 70000}, ["gpuforge_api_port 70000 is above the maximum 65535"]),
    ({"gpuforge_control_plane_endpoint": "api:port"},
     ["gpuforge_control_plane_endpoint 'api:port' is not host or host:port (port 'port' is not 1-65535)"]),
    ({"gpuforge_ha_mode": "kube_vip", "gpuforge_vip": "10.20.0"},
     ["gpuforge_ha_mode kube_vip needs gpuforge_vip, an unused IP address in the control planes' subnet (got "
      "'10.20.0')"]),
    ({"gpuforge_ha_mode": "external", "gpuforge_control_plane_endpoint": "10.96.0.1:6443"},
     ["gpuforge_control_plane_endpoint 10.96.0.1 is inside gpuforge_service_subnet 10.96.0.0/12"]),
    ({"gpuforge_kubeadm_dir": "etc/kubernetes"}, ["gpuforge_kubeadm_dir 'etc/kubernetes' is not an absolute path"]),
    ({"gpuforge_upgrade_worker_batch": "0"},
     ["gpuforge_upgrade_worker_batch 0 must be a number of workers (1 or more) or a percentage of them (1% to 100%)"]),
    ({"gpuforge_upgrade_worker_batch": "150%"},
     ["gpuforge_upgrade_worker_batch 150% must be a number of workers (1 or more) or a percentage of them (1% to "
      "100%)"]),
    ({"gpuforge_upgrade_worker_batch": "25%"}, []),
])
def test_cluster_model_rules(values, expected):
    assert errors(values, "cluster_model") == expected


# --- node layer -------------------------------------------------------------------------------


@pytest.mark.parametrize("values, expected", [
    ({}, []),
    ({"common_ntp_servers": [{"host": "ntp 1.example"}, {"host": "10.0.0.1"}]},
     ["common_ntp_servers[0].host 'ntp 1.example' is not a host name or an IP address"]),
    ({"common_hostname": "gpu_01"}, ["common_hostname 'gpu_01' is not a host name"]),
    ({"common_kernel_modules": ["overlay", "drivers/nvidia"]},
     ["common_kernel_modules: 'drivers/nvidia' is not a kernel module name"]),
    ({"common_sysctls": {"net.ipv4.ip_forward": 1, "vm max_map_count": 1}},
     ["common_sysctls: vm max_map_count are not sysctl names (dotted, e.g. net.ipv4.ip_forward)"]),
    ({"common_etc_hosts_group": ""},
     ["common_etc_hosts_group is empty while common_manage_etc_hosts is true: name the group whose hosts go into "
      "/etc/hosts"]),
    ({"common_etc_hosts_group": "", "common_manage_etc_hosts": False}, []),
    ({"common_apt_cache_valid_time": -1}, ["common_apt_cache_valid_time -1 is below the minimum 0"]),
])
def test_common_rules(values, expected):
    assert errors(values, "common") == expected


# --- GPU node layer ---------------------------------------------------------------------------


@pytest.mark.parametrize("values, expected", [
    ({}, []),
    ({"nvidia_driver_branch": "580", "nvidia_driver_version": "580.95.05"}, []),
    ({"nvidia_driver_branch": "58"}, ["nvidia_driver_branch '58' is not a driver branch such as '580' (its major "
                                      "number)"]),
    ({"nvidia_driver_branch": 5.8}, ["nvidia_driver_branch 5.8 is not a driver branch such as '580' (its major "
                                     "number); quote it"]),
    ({"nvidia_driver_version": "580"}, ["nvidia_driver_version '580' is not a driver version such as '580.95.05' "
                                        "(empty: the newest of nvidia_driver_branch)"]),
    ({"nvidia_driver_secure_boot_mok_key": "/etc/mok/key.priv"},
     ["set both nvidia_driver_secure_boot_mok_key and nvidia_driver_secure_boot_mok_cert, or neither (got key "
      "'/etc/mok/key.priv', certificate '')"]),
    ({"nvidia_driver_cuda_repo_url": "http://mirror.site.internal/cuda"},
     ["nvidia_driver_cuda_repo_url 'http://mirror.site.internal/cuda' is plain http: driver packages and keys must "
      "come over https (set gpuforge_allow_http_downloads: true only for a site mirror without TLS; the SHA-256 "
      "still protects them)"]),
    ({"nvidia_driver_reboot_timeout": 10}, ["nvidia_driver_reboot_timeout 10 is below the minimum 60"]),
])
def test_nvidia_driver_rules(values, expected):
    assert errors(values, "nvidia_driver") == expected


@pytest.mark.parametrize("values, expected", [
    ({}, []),
    ({"nvidia_container_toolkit_install_mode": "package_dir"},
     ["nvidia_container_toolkit_install_mode package_dir needs nvidia_container_toolkit_package_dir (a folder of "
      ".deb or .rpm files)"]),
    ({"nvidia_container_toolkit_packages": []},
     ["nvidia_container_toolkit_install_mode repo needs a non-empty nvidia_container_toolkit_packages"]),
    ({"nvidia_container_toolkit_install_mode": "configure_only", "nvidia_container_toolkit_packages": []}, []),
    ({"nvidia_container_toolkit_version": "v1.20"},
     ["nvidia_container_toolkit_version 'v1.20' is not a package version such as '1.20.2-1'"]),
    ({"nvidia_container_toolkit_containerd_dropin_name": "conf.d/99-nvidia.toml"},
     ["nvidia_container_toolkit_containerd_dropin_name 'conf.d/99-nvidia.toml' is not a file name ending in .toml"]),
    ({"nvidia_container_toolkit_apt_gpg_key_url": "http://nvidia.github.io/libnvidia-container/gpgkey"},
     ["nvidia_container_toolkit_apt_gpg_key_url 'http://nvidia.github.io/libnvidia-container/gpgkey' is plain http: "
      "packages and signing keys must come over https (set gpuforge_allow_http_downloads: true only for a site "
      "mirror without TLS; the SHA-256 still protects them)"]),
    ({"nvidia_container_toolkit_cdi_spec": "nvidia.yaml"},
     ["nvidia_container_toolkit_cdi_spec 'nvidia.yaml' is not an absolute path"]),
])
def test_nvidia_container_toolkit_rules(values, expected):
    assert errors(values, "nvidia_container_toolkit") == expected


# --- Kubernetes layer (the control plane's are in test_filter_kubeadm.py) ---------------------


@pytest.mark.parametrize("values, expected", [
    ({"cni_plugin": "none"}, []),
    ({"cni_bundle_dir": "/srv/gpuforge/cni"}, []),
    ({}, ["cni_bundle_dir is empty: it must name the folder of the CNI's upstream files on the controller "
          "(tests/k8s/cni_bundle.sh lays it out), or cni_plugin must be none"]),
    ({"cni_bundle_dir": "/srv/cni", "cni_image_registry": "https://mirror.example.internal:5000/"},
     ["cni_image_registry 'https://mirror.example.internal:5000/' must be a registry host[:port] with an optional "
      "path (for example mirror.example.internal:5000/cni), without a scheme or a trailing slash; empty keeps the "
      "upstream registry"]),
    ({"cni_bundle_dir": "/srv/cni", "cni_calico_mtu": 100}, ["cni_calico_mtu 100 must be 0 (auto-detect) or 576 to "
                                                             "9000"]),
    ({"cni_bundle_dir": "/srv/cni", "cni_cilium_kube_proxy_replacement": True},
     ["cni_cilium_kube_proxy_replacement needs cni_cilium_k8s_service_host (the API server's address: without "
      "kube-proxy, Cilium cannot reach it through the kubernetes Service)"]),
    ({"cni_bundle_dir": "/srv/cni", "cni_calico_version": "3.28.5"},
     ["cni_calico_version '3.28.5' is not a release tag such as v3.28.5"]),
    ({"cni_bundle_dir": "/srv/cni", "cni_cilium_version": "v1.18.6"},
     ["cni_cilium_version 'v1.18.6' is not a chart version such as '1.18.6'; drop the 'v'"]),
    ({"cni_bundle_dir": "/srv/cni", "cni_wait_timeout": 100000}, ["cni_wait_timeout 100000 is above the maximum "
                                                                  "86400"]),
])
def test_cni_rules(values, expected):
    assert errors(values, "cni") == expected


@pytest.mark.parametrize("values, expected", [
    ({}, []),
    ({"kubernetes_node_objects_labels": {"gpuforge.io/pool": "gpu", "zone": True}}, []),
    ({"kubernetes_node_objects_labels": {"Bad Key": "x"}},
     ["kubernetes_node_objects_labels: 'Bad Key' is not a label key ([prefix/]name)"]),
    ({"kubernetes_node_objects_labels": {"gpuforge.io/pool": "gpu pool"}},
     ["kubernetes_node_objects_labels: gpuforge.io/pool: 'gpu pool' is not a label value (63 characters of "
      "[A-Za-z0-9._-], alphanumeric at both ends)"]),
    ({"kubernetes_node_objects_taints": [{"key": "dedicated", "value": "batch", "effect": "Sometimes"}]},
     ["kubernetes_node_objects_taints[0].effect 'Sometimes' is not NoSchedule, PreferNoSchedule or NoExecute"]),
    ({"kubernetes_node_objects_taints": [{"effect": "NoSchedule"}]},
     ["kubernetes_node_objects_taints[0] needs a key that is a label key"]),
    ({"kubernetes_node_objects_runtime_class_name": "NVIDIA"},
     ["kubernetes_node_objects_runtime_class_name 'NVIDIA' is not a DNS-1123 name"]),
])
def test_kubernetes_node_objects_rules(values, expected):
    assert errors(values, "kubernetes_node_objects") == expected


@pytest.mark.parametrize("role, values, expected", [
    ("kubernetes_drain", {"kubernetes_drain_node": "gpu-01"}, []),
    ("kubernetes_drain", {"kubernetes_drain_timeout": 0}, ["kubernetes_drain_timeout 0 is below the minimum 1"]),
    ("kubernetes_drain", {"kubernetes_drain_grace_period": -2}, ["kubernetes_drain_grace_period -2 is below the "
                                                                 "minimum -1"]),
    ("kubernetes_upgrade", {"kubernetes_upgrade_node_ready_timeout": 100000},
     ["kubernetes_upgrade_node_ready_timeout 100000 is above the maximum 86400"]),
    ("kubernetes_worker", {}, []),
    ("preflight", {}, []),
    ("preflight", {"preflight_min_memory_mib": -5}, ["preflight_min_memory_mib -5 is below the minimum 0"]),
    ("preflight", {"preflight_required_groups": ["control_plane", "gpu workers"]},
     ["preflight_required_groups: 'gpu workers' is not a group name"]),
    ("preflight", {"preflight_min_python_version": "three"},
     ["preflight_min_python_version 'three' is not a version such as '3.8'"]),
])
def test_constraints_and_rules_of_the_other_roles(role, values, expected):
    assert errors(values, role) == expected


# --- every role -------------------------------------------------------------------------------


def test_every_role_is_covered():
    # Changed by design: RULES had containerd, kubernetes_node and kubernetes_control_plane only, and the filter
    # refused a role without rules ("no rules for role 'common'"). Now every role with variables has rules, or
    # constraints of its variables (ranges, formats), and the filter takes every role of the collection.
    assert set(vr.RULES) == {"cluster_model", "common", "containerd", "nvidia_driver", "nvidia_container_toolkit",
                             "kubernetes_node", "kubernetes_control_plane", "cni", "kubernetes_node_objects",
                             "preflight"}
    assert set(vr.RULES) <= set(ROLES)
    for role in ROLES:
        options = SPECS[role]
        constrained = [v for v in vr.CONSTRAINTS if v in options]
        assert role in vr.RULES or constrained or not options, role
    # every constraint is of a variable some role defines
    known = {name for options in SPECS.values() for name in options}
    assert set(vr.CONSTRAINTS) <= known, set(vr.CONSTRAINTS) - known


@pytest.mark.parametrize("role", ROLES)
def test_the_defaults_of_every_role_pass_their_rules(role):
    # what a role needs from the site (cni's bundle folder) is the only thing the defaults leave out
    needed = {"cni": {"cni_bundle_dir": "/srv/gpuforge/cni"}}.get(role, {})
    assert errors(needed, role) == []


def test_filter_input_errors():
    with pytest.raises(AnsibleFilterError, match="'no_such_role' is not a role of the collection"):
        errors({}, "no_such_role")
    with pytest.raises(AnsibleFilterError, match="values must be a dict"):
        errors(["containerd_version"], "containerd")


def test_the_filter_applies_the_defaults_of_the_role_and_the_cluster():
    # kube_vip (a cluster-wide value) given, the control plane's kube_vip_image left to its default ("")
    assert errors({"gpuforge_ha_mode": "kube_vip", "gpuforge_vip": "10.20.0.10"}, "kubernetes_control_plane") == [
        "gpuforge_ha_mode kube_vip needs kubernetes_control_plane_kube_vip_image, the kube-vip image (repository:tag) "
        "in the site's registry"]
    # the values given win over the defaults; the filter does not change its input
    values = {"containerd_install_method": "archive"}
    assert len(errors(values, "containerd")) == 3
    assert values == {"containerd_install_method": "archive"}


def test_role_variable_errors_constraints_are_optional():
    # preflight checks the constraints with the types: it runs the rules alone
    values = {"preflight_min_memory_mib": -5, "preflight_required_groups": ["control_plane"]}
    assert vr.role_variable_errors("preflight", values) == [
        ("preflight_min_memory_mib", "preflight_min_memory_mib -5 is below the minimum 0")]
    assert vr.role_variable_errors("preflight", values, constraints=False) == []


# --- preflight runs them ----------------------------------------------------------------------


# inventories/example's group_vars/k8s_cluster names the CNI bundle; so do these inventories
CNI = {"cni_bundle_dir": "/srv/gpuforge/cni"}


def test_preflight_runs_the_rules_with_the_defaults_applied():
    groups = {"all": ["cp1", "w1"], "k8s_cluster": ["cp1", "w1"], "control_plane": ["cp1"], "workers": ["w1"]}
    hostvars = {"cp1": dict(CNI, containerd_install_method="archive"), "w1": dict(CNI)}
    failed = [r for r in pf.preflight_inventory_checks(groups, hostvars, SPECS) if not r["ok"]]
    # (containerd_archive_sha256 is required with an archive now)
    assert [(r["host"], r["check"], r["variable"]) for r in failed] == [
        ("cp1", "variable_rule", "containerd_version"), ("cp1", "variable_rule", "containerd_archive_dir"),
        ("cp1", "variable_rule", "containerd_archive_sha256")]
    assert failed[0]["message"].endswith("got '' (role containerd)")  # containerd_version's default
    # without a CNI bundle, the cni role's rule fails on every host
    hostvars = {"cp1": {}, "w1": {}}
    failed = [r for r in pf.preflight_inventory_checks(groups, hostvars, SPECS) if not r["ok"]]
    assert [(r["host"], r["variable"]) for r in failed] == [("cp1", "cni_bundle_dir"), ("w1", "cni_bundle_dir")]
    assert failed[0]["message"].endswith("or cni_plugin must be none (role cni)")


def test_preflight_does_not_judge_rules_of_a_variable_that_failed_its_type():
    groups = {"all": ["cp1"], "k8s_cluster": ["cp1"], "control_plane": ["cp1"]}
    hostvars = {"cp1": dict(CNI, containerd_registry_mirrors="r.site=https://m")}
    failed = [r for r in pf.preflight_inventory_checks(groups, hostvars, SPECS) if not r["ok"]]
    checks = [r["check"] for r in failed]
    assert checks and "variable_rule" not in checks  # its own checks failed (key=value string): no rule noise
    assert {r["variable"] for r in failed} == {"containerd_registry_mirrors"}


def test_preflight_runs_the_rules_of_the_cluster_model_for_every_host():
    groups = {"all": ["cp1", "w1"], "k8s_cluster": ["cp1", "w1"], "control_plane": ["cp1"], "workers": ["w1"]}
    hostvars = {"cp1": dict(CNI, gpuforge_pod_subnet="10.244.0.0/25"), "w1": dict(CNI, gpuforge_pod_subnet="10.244.0.0/25")}
    failed = [r for r in pf.preflight_inventory_checks(groups, hostvars, SPECS) if not r["ok"]]
    assert [(r["host"], r["check"], r["variable"]) for r in failed] == [
        ("cp1", "variable_rule", "gpuforge_pod_subnet"), ("w1", "variable_rule", "gpuforge_pod_subnet")]
    assert failed[0]["message"].endswith("(cluster-wide variables)")


# --- lab settings -------------------------------------------------------------------------------

LAB_ONLY = "a lab setting, and gpuforge_lab is false; set it only in a lab's inventory (or " \
           "gpuforge_allow_lab_settings: true, with a reason)"
# What inventories/lab sets for lab nodes that run a kubelet (docs/lab.md).
LAB = {"gpuforge_kubeadm_ignore_preflight_errors": ["SystemVerification"], "containerd_restrict_oom_score_adj": True,
       "kubernetes_control_plane_kubelet_config": {"failCgroupV1": False, "failSwapOn": False, "maxPods": 50}}


@pytest.mark.parametrize("values, expected", [
    (LAB, [
        "gpuforge_kubeadm_ignore_preflight_errors makes kubeadm init and join ignore the errors of its preflight "
        "checks: " + LAB_ONLY,
        "containerd_restrict_oom_score_adj caps the OOM score adjustment containerd gives containers (for a runtime "
        "without CAP_SYS_RESOURCE): " + LAB_ONLY,
        "kubernetes_control_plane_kubelet_config has failCgroupV1: false, a kubelet on cgroup v1: " + LAB_ONLY,
        "kubernetes_control_plane_kubelet_config has failSwapOn: false, a kubelet beside active swap: " + LAB_ONLY]),
    (dict(LAB, gpuforge_lab=True), []),
    (dict(LAB, gpuforge_allow_lab_settings=True), []),
    # the values a real site may set are not lab settings
    ({"containerd_restrict_oom_score_adj": False, "gpuforge_kubeadm_ignore_preflight_errors": [],
      "kubernetes_control_plane_kubelet_config": {"failSwapOn": True, "maxPods": 50}}, []),
    # 'all' hides every check, in a lab too
    ({"gpuforge_lab": True, "gpuforge_kubeadm_ignore_preflight_errors": ["All"]},
     ["gpuforge_kubeadm_ignore_preflight_errors names 'all': name the checks to ignore (e.g. SystemVerification), "
      "so that the others still stop a node that cannot work"]),
])
def test_lab_settings_only_in_a_lab(values, expected):
    assert errors(values, "cluster_model") == expected


def test_preflight_refuses_lab_settings_outside_a_lab_naming_host_and_variable():
    groups = {"all": ["cp1", "w1"], "k8s_cluster": ["cp1", "w1"], "control_plane": ["cp1"], "workers": ["w1"]}
    hostvars = {"cp1": dict(CNI), "w1": dict(CNI, containerd_restrict_oom_score_adj=True)}
    failed = [r for r in pf.preflight_inventory_checks(groups, hostvars, SPECS) if not r["ok"]]
    assert [(r["host"], r["check"], r["variable"]) for r in failed] == [
        ("w1", "variable_rule", "containerd_restrict_oom_score_adj")]
    assert failed[0]["message"].startswith("w1: containerd_restrict_oom_score_adj caps the OOM score")
    # the lab inventory's own settings pass there
    hostvars = {h: dict(CNI, gpuforge_lab=True, **LAB) for h in ("cp1", "w1")}
    assert [r for r in pf.preflight_inventory_checks(groups, hostvars, SPECS) if not r["ok"]] == []


def test_the_model_carries_the_kubeadm_checks_to_ignore():
    from ansible_collections.gpuforge.cluster.plugins.module_utils import cluster
    groups = {"all": ["cp1"], "k8s_cluster": ["cp1"], "control_plane": ["cp1"]}
    model, problems = cluster.build(groups, {"cp1": {"gpuforge_kubeadm_ignore_preflight_errors": ["SystemVerification"],
                                                     "gpuforge_lab": True}}, SPECS)
    assert problems == [] and model["kubeadm_ignore_preflight_errors"] == ["SystemVerification"]
