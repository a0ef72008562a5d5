"""Verifier of gpuforge.cluster.cni: what the API server of the Kubernetes test harness (molecule.yml)
holds after converge (Calico, images on a mirror, the pod subnet of the uploaded kubeadm
configuration), read with kubectl on the controller (Testinfra's local backend)."""

import json
import os
from pathlib import Path

import pytest
import testinfra
import yaml

CACHE = Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge")
KUBECONFIG = CACHE / "k8s" / "clusters" / "molecule-cni" / "admin.conf"
STATE = json.loads((KUBECONFIG.parent / "state.json").read_text())
KUBECTL = f"{STATE['bin_dir']}/kubectl --kubeconfig {KUBECONFIG}"
SCENARIO = Path(__file__).resolve().parents[1]
ROLE_DEFAULTS = yaml.safe_load((SCENARIO.parents[1] / "roles" / "cni" / "defaults" / "main.yml").read_text())
CALICO = ROLE_DEFAULTS["cni_calico_version"]
MANIFEST = CACHE / "cni" / "bundle" / "calico" / CALICO / "manifests" / "calico.yaml"  # the bundle keeps upstream's layout
POD_SUBNET = "10.32.0.0/16"  # files/kubeadm.yaml
MIRROR = "mirror.example.internal:5000"  # molecule.yml
NODES = {"cp-01", "worker-01", "worker-02"}  # files/nodes.yml


@pytest.fixture(scope="module")
def local():
    return testinfra.get_host("local://")


def kubectl_json(local, *args):
    return json.loads(local.check_output(f"{KUBECTL} {' '.join(args)} -o json"))


@pytest.fixture(scope="module")
def calico_node(local):
    return kubectl_json(local, "-n", "kube-system", "get", "daemonset", "calico-node", "--show-managed-fields")


def containers(workload):
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_the_kubeadm_config_has_the_custom_pod_subnet(local):
    cm = kubectl_json(local, "-n", "kube-system", "get", "configmap", "kubeadm-config")
    assert yaml.safe_load(cm["data"]["ClusterConfiguration"])["networking"]["podSubnet"] == POD_SUBNET


def test_calico_pool_is_the_cluster_pod_subnet(calico_node):
    node = next(c for c in calico_node["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")
    env = {e["name"]: e.get("value") for e in node["env"]}
    assert env["CALICO_IPV4POOL_CIDR"] == POD_SUBNET
    # IPIP, as upstream
    assert (env["CALICO_IPV4POOL_IPIP"], env["CALICO_IPV4POOL_VXLAN"]) == ("Always", "Never")
    assert "-bird-ready" in node["readinessProbe"]["exec"]["command"]


def test_calico_config(local):
    cm = kubectl_json(local, "-n", "kube-system", "get", "configmap", "calico-config")
    assert (cm["data"]["calico_backend"], cm["data"]["veth_mtu"]) == ("bird", "0")
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gpuforge"


def test_images_are_on_the_mirror(local, calico_node):
    controllers = kubectl_json(local, "-n", "kube-system", "get", "deployment", "calico-kube-controllers")
    images = {c["name"]: c["image"] for w in (calico_node, controllers) for c in containers(w)}
    assert images == {
        "upgrade-ipam": f"{MIRROR}/calico/cni:{CALICO}",
        "install-cni": f"{MIRROR}/calico/cni:{CALICO}",
        "mount-bpffs": f"{MIRROR}/calico/node:{CALICO}",
        "calico-node": f"{MIRROR}/calico/node:{CALICO}",
        "calico-kube-controllers": f"{MIRROR}/calico/kube-controllers:{CALICO}",
    }


def test_applied_server_side_by_gpuforge(calico_node):
    managers = {(m["manager"], m["operation"]) for m in calico_node["metadata"]["managedFields"]}
    assert ("gpuforge", "Apply") in managers
    assert "kubectl.kubernetes.io/last-applied-configuration" not in calico_node["metadata"].get("annotations", {})


def test_every_crd_of_the_manifest_is_established(local):
    wanted = {d["metadata"]["name"] for d in yaml.safe_load_all(MANIFEST.read_text())
              if d and d["kind"] == "CustomResourceDefinition"}
    assert len(wanted) == 18
    crds = {c["metadata"]["name"]: c for c in kubectl_json(local, "get", "crd")["items"]}
    assert wanted <= set(crds)
    for name in wanted:
        conditions = {c["type"]: c["status"] for c in crds[name]["status"]["conditions"]}
        assert conditions.get("Established") == "True", name


def test_calico_runs_on_every_node(local, calico_node):
    status = calico_node["status"]
    assert status["desiredNumberScheduled"] == status["numberReady"] == len(NODES)
    pods = kubectl_json(local, "-n", "kube-system", "get", "pods", "-l", "k8s-app=calico-node")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == NODES
    assert {p["status"]["phase"] for p in pods} == {"Running"}


def test_every_node_is_ready(local):
    nodes = kubectl_json(local, "get", "nodes")["items"]
    assert {n["metadata"]["name"] for n in nodes} == NODES
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", node["metadata"]["name"]
