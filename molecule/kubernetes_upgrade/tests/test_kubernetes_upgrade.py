"""Verifier of gpuforge.cluster.kubernetes_upgrade (molecule.yml): after playbooks/upgrade.yml with the
running version as the target, what the API server of the Kubernetes test harness holds, read with
the harness's kubectl on the controller (Testinfra's local backend): nothing was cordoned, drained or
changed."""

import json
import os
from pathlib import Path

import pytest
import testinfra

CACHE = Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge")
HARNESS = CACHE / "k8s" / "clusters" / "molecule-upgrade"
STATE = json.loads((HARNESS / "state.json").read_text())
KUBECTL = f"{STATE['bin_dir']}/kubectl --kubeconfig {HARNESS / 'admin.conf'}"
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
NODES = ("cp-01", "wk-01", "wk-02")
ANNOTATION = "gpuforge.io/cordoned-by"  # gpuforge.cluster.kubernetes_drain's


@pytest.fixture(scope="module")
def local():
    return testinfra.get_host("local://")


def kubectl_json(local, *args):
    return json.loads(local.check_output(f"{KUBECTL} {' '.join(args)} -o json"))


@pytest.mark.parametrize("name", NODES)
def test_node_is_schedulable_and_at_the_target(local, name):
    node = kubectl_json(local, "get", "node", name)
    assert not node["spec"].get("unschedulable", False)
    assert ANNOTATION not in node["metadata"].get("annotations", {})
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.37.2"
    ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]


def test_no_taint_of_a_cordon(local):
    for name in NODES:
        taints = kubectl_json(local, "get", "node", name)["spec"].get("taints") or []
        assert "node.kubernetes.io/unschedulable" not in [t["key"] for t in taints], name


def test_the_workload_was_not_evicted(local):
    before = json.loads((EPHEMERAL / "pods-before.json").read_text())
    pods = kubectl_json(local, "get", "pods", "--selector=app=web")["items"]
    assert sorted(p["metadata"]["uid"] for p in pods) == before
    assert {p["spec"]["nodeName"] for p in pods} == {"wk-01"}
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert not [p for p in pods if p["metadata"].get("deletionTimestamp")]


def test_no_eviction_happened(local):
    events = kubectl_json(local, "get", "events", "--all-namespaces")["items"]
    reasons = {e.get("reason") for e in events}
    assert not reasons & {"Evicted", "NodeNotSchedulable"}, reasons


def test_the_cluster_version_is_unchanged(local):
    config = kubectl_json(local, "--namespace=kube-system", "get", "configmap", "kubeadm-config")
    assert "kubernetesVersion: v1.37.2" in config["data"]["ClusterConfiguration"]
    version = json.loads(local.check_output(f"{KUBECTL} version -o json"))
    assert version["serverVersion"]["gitVersion"] == "v1.37.2"
