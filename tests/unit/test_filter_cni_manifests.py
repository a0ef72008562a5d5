"""Unit tests for the CNI filters (plugins/filter/cni_manifests.py) that need no upstream file: the
bundle versions against the role defaults, input that is not a manifest, image references, Helm
values errors and the pod subnet rules. The filters on the real upstream manifests and chart values
(the bundle, copied from shared/charts/cni) are tested in tests/k8s/test_cni_manifests.py."""

import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter import cni_manifests as cm

from gpuforge.shared_inputs import find_shared_dir

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = dict(line.split("=", 1) for line in (ROOT / "tests" / "k8s" / "cni_versions.env").read_text().splitlines()
                if line and not line.startswith("#"))
DEFAULTS = yaml.safe_load((ROOT / "roles" / "cni" / "defaults" / "main.yml").read_text())
MIRROR = "mirror.example.internal:5000"
SUBNET = "10.32.0.0/16"


def images(docs):
    """(kind/name/container, image) of every container of the workloads."""
    return cm.workload_images(docs)


def test_the_bundle_versions_are_the_role_defaults():
    assert VERSIONS["CALICO_VERSION"] == DEFAULTS["cni_calico_version"]
    assert VERSIONS["FLANNEL_VERSION"] == DEFAULTS["cni_flannel_version"]
    assert VERSIONS["CILIUM_VERSION"] == DEFAULTS["cni_cilium_version"]


def test_the_pinned_upstream_files_hold_every_release_the_bundle_takes():
    """tests/k8s/cni_bundle.sh copies them from shared/charts/cni, checked against its SHA256SUMS."""
    source = find_shared_dir() / "charts" / "cni"
    listed = {line.split()[1].removeprefix("./") for line in (source / "SHA256SUMS").read_text().splitlines()}
    wanted = {f"calico/{VERSIONS['CALICO_VERSION']}/manifests/calico.yaml",
              f"flannel/{VERSIONS['FLANNEL_VERSION']}/Documentation/kube-flannel.yml",
              f"cilium/{VERSIONS['CILIUM_VERSION']}/cilium-{VERSIONS['CILIUM_VERSION']}.tgz"}
    assert wanted <= listed, wanted - listed


@pytest.mark.parametrize("documents, message", [
    ("kind: DaemonSet", "the documents must be a list"),
    ({"kind": "DaemonSet"}, "the documents must be a list"),
    ([None, None], "the manifest has no document"),
    ([{"kind": "ConfigMap"}], "document 0 is not a Kubernetes object"),
    ([["a"]], "document 0 is not a Kubernetes object"),
])
def test_not_a_manifest(documents, message):
    with pytest.raises(AnsibleFilterError, match="^cni_calico_manifest: " + message):
        cm.cni_calico_manifest(documents, SUBNET)


@pytest.mark.parametrize("image, moved", [
    ("busybox", f"{MIRROR}/library/busybox"),
    ("calico/node:v3", f"{MIRROR}/calico/node:v3"),
    ("localhost/a/b:1", f"{MIRROR}/a/b:1"),
    ("registry.example.org:443/team/app@sha256:" + "ab" * 32, f"{MIRROR}/team/app@sha256:" + "ab" * 32),
])
def test_image_references(image, moved):
    for kind, doc in (("CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": image}]}}}}}}),
            ("Pod", {"spec": {"initContainers": [{"name": "c", "image": image}], "containers": []}})):
        out = cm.cni_image_registry([{"kind": kind, "metadata": {"name": "x"}, **doc}], MIRROR)
        assert images(out) == [(f"{kind}/x/c", moved)]


def test_bad_image_in_a_manifest():
    doc = {"kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "Bad Image"}]}}}}
    with pytest.raises(AnsibleFilterError, match="Deployment d, containers app: 'Bad Image' is not an image reference"):
        cm.cni_image_registry([doc], MIRROR)


def test_helm_values_bad_input():
    with pytest.raises(AnsibleFilterError, match="values must be the chart's values"):
        cm.cni_helm_image_values(["image"], MIRROR)
    with pytest.raises(AnsibleFilterError, match="hubble.image.repository: 'bad image' is not an image reference"):
        cm.cni_helm_image_values({"hubble": {"image": {"repository": "bad image", "tag": "1"}}}, MIRROR)


# --- the pod subnet ---------------------------------------------------------------------------

def kubeadm_config(networking):
    text = yaml.safe_dump({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                           "networking": networking})
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
             "data": {"ClusterConfiguration": text}}]


# Changed by design: the value is the cluster model's gpuforge_pod_subnet now (there is no cni_pod_subnet that
# may be empty and read from the cluster); the cluster must record a podSubnet in kubeadm-config and it must be
# the same network. The errors name gpuforge_pod_subnet.

def test_pod_subnet_of_the_model_and_the_cluster():
    got = cm.cni_pod_network(SUBNET, kubeadm_config({"podSubnet": SUBNET, "serviceSubnet": "10.96.0.0/12"}))
    assert got == {"subnet": SUBNET, "cluster": SUBNET, "service": "10.96.0.0/12", "errors": []}
    # the whole k8s_info result works too
    assert cm.cni_pod_network(SUBNET, {"resources": kubeadm_config({"podSubnet": SUBNET})})["subnet"] == SUBNET


def test_pod_subnet_set_and_the_same_as_the_cluster():
    assert cm.cni_pod_network(SUBNET, kubeadm_config({"podSubnet": SUBNET}))["errors"] == []
    # the same network written with host bits is the same network
    assert cm.cni_pod_network(SUBNET, kubeadm_config({"podSubnet": "10.32.0.1/16"}))["errors"] == []


@pytest.mark.parametrize("value, networking, message", [
    # no record of the cluster's pod subnet (it was the value alone before): refused
    (SUBNET, None, "the cluster records no pod subnet .no networking.podSubnet in the ClusterConfiguration of "
                   "ConfigMap kube-system/kubeadm-config, which kubeadm init uploads.: the CNI goes on a cluster "
                   "kubeadm made, on the pod subnet it recorded .gpuforge_pod_subnet 10.32.0.0/16."),
    (SUBNET, {"serviceSubnet": "10.96.0.0/12"}, "the cluster records no pod subnet"),
    # an empty value is no longer "read the cluster's"
    ("", None, "gpuforge_pod_subnet: '' is not a network in CIDR notation"),
    ("", {"podSubnet": SUBNET}, "gpuforge_pod_subnet: '' is not a network in CIDR notation"),
    ("10.99.0.0/16", {"podSubnet": SUBNET}, "gpuforge_pod_subnet is 10.99.0.0/16 but the cluster's pod subnet "
                                            r"\(networking.podSubnet in ConfigMap kube-system/kubeadm-config\) is "
                                            "10.32.0.0/16: kubeadm init fixed it when it created the cluster; set "
                                            "gpuforge_pod_subnet to 10.32.0.0/16"),
    ("10.32.0.1/16", None, "gpuforge_pod_subnet: '10.32.0.1/16' is not a valid network"),
    (SUBNET, {"podSubnet": "10.32.0.0/16,fd00:10:32::/56"}, "is '10.32.0.0/16,fd00:10:32::/56', dual-stack"),
    ("10.32.0.0/27", {"podSubnet": "10.32.0.0/27"}, "gpuforge_pod_subnet: '10.32.0.0/27' is a /27"),
    ("fd00:10:32::/56", {"podSubnet": "fd00:10:32::/56"}, "gpuforge_pod_subnet: 'fd00:10:32::/56' is not an IPv4 "
                                                          "network"),
    (SUBNET, {"podSubnet": "not-a-net"}, "'not-a-net' is not a network"),
    ("10.96.0.0/16", {"podSubnet": "10.96.0.0/16", "serviceSubnet": "10.96.0.0/12"},
     "the pod subnet 10.96.0.0/16 overlaps the service subnet 10.96.0.0/12"),
])
def test_pod_subnet_errors(value, networking, message):
    got = cm.cni_pod_network(value, kubeadm_config(networking) if networking is not None else [])
    assert got["subnet"] == ""
    assert any(re.search(message, e) for e in got["errors"]), got["errors"]


def test_cluster_configuration_not_yaml():
    config = kubeadm_config({})
    config[0]["data"]["ClusterConfiguration"] = "networking: [unclosed"
    got = cm.cni_pod_network(SUBNET, config)
    assert got["errors"] and got["errors"][0].startswith("the ClusterConfiguration in ConfigMap "
                                                         "kube-system/kubeadm-config is not YAML")


def test_kubeadm_config_of_the_wrong_type():
    with pytest.raises(AnsibleFilterError, match="kubeadm_config must be the ConfigMap kube-system/kubeadm-config"):
        cm.cni_pod_network(SUBNET, 42)


def test_filter_module_exports():
    assert set(cm.FilterModule().filters()) == {"cni_pod_network", "cni_calico_manifest", "cni_flannel_manifest",
                                                "cni_image_registry", "cni_helm_image_values"}
