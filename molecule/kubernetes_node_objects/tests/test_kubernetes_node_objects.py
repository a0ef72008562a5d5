"""Verifier of gpuforge.cluster.kubernetes_node_objects: what the API server of the Kubernetes test
harness (molecule.yml) holds after converge, read with kubectl on the controller (Testinfra's local
backend)."""

import json
import os
import time
from pathlib import Path

import pytest
import testinfra

CACHE = Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge")
KUBECONFIG = CACHE / "k8s" / "clusters" / "molecule-node-objects" / "admin.conf"
STATE = json.loads((KUBECONFIG.parent / "state.json").read_text())
KUBECTL = f"{STATE['bin_dir']}/kubectl --kubeconfig {KUBECONFIG}"
MANAGED_L, MANAGED_T = "gpuforge.io/managed-labels", "gpuforge.io/managed-taints"


@pytest.fixture(scope="module")
def local():
    return testinfra.get_host("local://")


def kubectl_json(local, *args):
    return json.loads(local.check_output(f"{KUBECTL} {' '.join(args)} -o json"))


def node(local, name):
    return kubectl_json(local, "get", "node", name)


def taints(obj):
    return sorted((t["key"], t.get("value", ""), t["effect"]) for t in obj["spec"].get("taints") or [])


def test_control_plane_keeps_kubeadm_taint(local):
    cp = node(local, "cp-01")
    assert cp["metadata"]["labels"]["topology.kubernetes.io/zone"] == "rack-1"
    assert taints(cp) == [("node-role.kubernetes.io/control-plane", "", "NoSchedule")]
    assert cp["metadata"]["annotations"][MANAGED_L] == "topology.kubernetes.io/zone"
    assert cp["metadata"]["annotations"][MANAGED_T] == ""


def test_worker_labels_and_taints_replace_the_old_ones(local):
    w = node(local, "cpu-01")
    labels = w["metadata"]["labels"]
    assert labels["topology.kubernetes.io/zone"] == "rack-2" and labels["gpuforge.io/pool"] == "cpu"
    assert "gpuforge.io/retired" not in labels  # recorded as gpuforge's, no longer listed: removed
    assert labels["owner.example.com/team"] == "infra"  # someone else's: kept
    assert taints(w) == [("dedicated", "batch", "PreferNoSchedule"),
                         ("owner.example.com/maintenance", "", "PreferNoSchedule")]
    assert w["metadata"]["annotations"][MANAGED_L] == "gpuforge.io/pool,topology.kubernetes.io/zone"
    assert w["metadata"]["annotations"][MANAGED_T] == "dedicated:PreferNoSchedule"
    assert not [k for k in labels if k.startswith("nvidia.com/")]


def test_gpu_worker_carries_the_labels_of_its_capture(local):
    g = node(local, "gpu-01")
    labels = g["metadata"]["labels"]
    # telegraf__a100-sxm4-v12.xml: A100 80GB, MIG on with four 1g.20gb devices, driver 535.54.03
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/mig.strategy"] == "mixed"
    assert labels["nvidia.com/mig-1g.20gb.count"] == "4"
    assert labels["nvidia.com/cuda.driver-version.full"] == "535.54.03"
    assert labels["gpuforge.io/pool"] == "gpu"
    assert taints(g) == [("nvidia.com/gpu", "present", "NoSchedule")]
    managed = g["metadata"]["annotations"][MANAGED_L].split(",")
    assert "nvidia.com/gpu.product" in managed and "gpuforge.io/pool" in managed
    assert managed == sorted(managed)


def test_runtime_class(local):
    rc = kubectl_json(local, "get", "runtimeclass", "nvidia")
    assert rc["handler"] == "nvidia"
    assert rc["scheduling"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_a_pod_of_the_runtime_class_runs_on_the_gpu_node(local):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rc-probe", "namespace": "default"},
           "spec": {"runtimeClassName": "nvidia", "terminationGracePeriodSeconds": 0,
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "main", "image": "localhost/gpuforge/never-pulled:1"}]}}
    local.check_output(f"echo '{json.dumps(pod)}' | {KUBECTL} apply -f -")
    try:
        for _ in range(120):
            got = kubectl_json(local, "get", "pod", "rc-probe", "-n", "default")
            if got["status"].get("phase") == "Running":
                break
            time.sleep(0.5)
        # RuntimeClass admission added the class's node selector; the scheduler honoured it
        assert got["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert (got["spec"]["nodeName"], got["status"]["phase"]) == ("gpu-01", "Running")
    finally:
        local.run(f"{KUBECTL} delete pod rc-probe -n default --wait=false")
