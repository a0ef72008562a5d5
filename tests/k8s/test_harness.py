"""The harness control plane is real: it admits, defaults, rejects and schedules.

Runs against the session's harness (conftest.py): kube-apiserver, controller-manager, scheduler
and etcd built from source, kwok nodes from tests/k8s/nodes.yml (an 8x H100 node, a 4x A100 node
with MIG (16x 1g.20gb, mixed strategy), a T4 node, a CPU worker and a control-plane node).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from gpuforge import k8s_harness
from gpuforge.runner import run_playbook
from gpuforge.shared_inputs import find_shared_dir

from k8s_helpers import wait_for

HERE = Path(__file__).resolve().parent
H100, A100, T4 = "gpu-h100-01", "gpu-a100-mig-01", "gpu-t4-01"



def gpu_pod(name, resources, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "localhost/gpuforge/never-pulled:1",
                                     "resources": {"limits": {k: str(v) for k, v in resources.items()}}}],
                     "terminationGracePeriodSeconds": 0, **spec}}


def pod_state(core_v1, namespace, name):
    pod = core_v1.read_namespaced_pod(name, namespace)
    scheduled = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
    return pod.spec.node_name, pod.status.phase, scheduled


def wait_running(core_v1, namespace, name):
    return wait_for(f"pod {name} Running", lambda: (
        lambda s: s if s[1] == "Running" else None)(pod_state(core_v1, namespace, name)))


def wait_unschedulable(core_v1, namespace, name):
    return wait_for(f"pod {name} Unschedulable", lambda: (
        lambda s: s if s[2] is not None and s[2].status == "False" and s[2].reason == "Unschedulable" else None)(
        pod_state(core_v1, namespace, name)))


# --- the cluster and its nodes ---------------------------------------------------------------

def test_server_is_the_version_built(api, harness):
    info = client.VersionApi(api).get_code()
    assert info.git_version == k8s_harness.versions()["KUBERNETES_VERSION"]
    assert (info.major, info.minor) == ("1", info.git_version.split(".")[1])
    ok, body = k8s_harness._https_ok(f"{harness.server}/readyz?verbose", str(harness.workdir / "pki" / "ca.crt"))
    assert ok and "[+]etcd ok" in body


def test_kwok_nodes_mirror_the_node_set(core_v1):
    nodes = {n.metadata.name: n for n in core_v1.list_node().items}
    assert set(nodes) == {"cp-01", "cpu-01", H100, A100, T4}
    for node in nodes.values():
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions), node.metadata.name
        assert node.metadata.annotations[k8s_harness.FAKE_ANNOTATION] == "fake"
    assert [t.key for t in nodes["cp-01"].spec.taints] == ["node-role.kubernetes.io/control-plane"]
    # capacities from the gpu_resources filter on the real captures
    gpu_capacity = {name: {k: v for k, v in n.status.allocatable.items() if k.startswith("nvidia.com/")}
                    for name, n in nodes.items()}
    assert gpu_capacity == {"cp-01": {}, "cpu-01": {}, H100: {"nvidia.com/gpu": "8"},
                            A100: {"nvidia.com/mig-1g.20gb": "16"}, T4: {"nvidia.com/gpu": "1"}}
    # labels from the gpu_labels filter: values read from the captures
    h100 = nodes[H100].metadata.labels
    assert (h100["nvidia.com/gpu.product"], h100["nvidia.com/gpu.count"], h100["nvidia.com/gpu.memory"],
            h100["nvidia.com/gpu.family"], h100["nvidia.com/cuda.driver-version.full"]) == (
        "NVIDIA-H100-80GB-HBM3", "8", "81559", "hopper", "590.48.01")
    a100 = nodes[A100].metadata.labels
    assert (a100["nvidia.com/gpu.product"], a100["nvidia.com/gpu.count"], a100["nvidia.com/mig.strategy"],
            a100["nvidia.com/mig-1g.20gb.count"], a100["nvidia.com/mig-1g.20gb.memory"],
            a100["nvidia.com/cuda.driver-version.full"]) == (
        "NVIDIA-A100-SXM4-80GB", "4", "mixed", "16", "19968", "535.54.03")
    t4 = nodes[T4].metadata.labels
    assert (t4["nvidia.com/gpu.product"], t4["nvidia.com/gpu.family"], t4["nvidia.com/cuda.runtime-version.full"]) \
        == ("Tesla-T4", "turing", "11.7")
    assert not [k for k in nodes["cpu-01"].metadata.labels if k.startswith("nvidia.com/")]


def test_nodes_from_an_inventory():
    nodes = k8s_harness.nodes_from_inventory(HERE.parents[1] / "inventories" / "example" / "hosts.yml")
    assert [(n.name, n.role) for n in nodes] == [
        ("cp-01", "control-plane"), ("cp-02", "control-plane"), ("cp-03", "control-plane"),
        ("cpu-01", "worker"), ("cpu-02", "worker"), ("gpu-01", "worker"), ("gpu-02", "worker")]
    objects = {n.name: k8s_harness.node_object(n, "v1.0.0") for n in nodes}
    # the A100 capture of the lab's gpu1: 4 GPUs attached, each with four 1g.20gb MIG devices
    assert objects["gpu-01"]["status"]["capacity"]["nvidia.com/mig-1g.20gb"] == "16"
    assert objects["gpu-02"]["status"]["capacity"]["nvidia.com/gpu"] == "1"  # a T4
    assert "nvidia.com/gpu" not in objects["cpu-01"]["status"]["capacity"]


# --- clients --------------------------------------------------------------------------------

def test_python_client_round_trip(core_v1, namespace):
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    assert core_v1.read_namespaced_config_map("cm", namespace).data == {"k": "v"}
    with pytest.raises(ApiException) as exc:
        core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {}})
    assert exc.value.status == 409


def test_kubernetes_core_from_a_playbook(harness, core_v1, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    extravars = {"harness_kubeconfig": str(harness.kubeconfig)}
    playbook = HERE / "playbooks" / "k8s_objects.yml"
    try:
        first = run_playbook(playbook, inventory, extravars=extravars)
        assert first.ok, first.table()
        assert first.hosts["localhost"]["changed"] == 3
        second = run_playbook(playbook, inventory, extravars=extravars)
        assert second.ok and second.hosts["localhost"]["changed"] == 0, second.table()
        check = run_playbook(playbook, inventory, extravars=extravars, check=True, diff=True)
        assert check.ok and check.hosts["localhost"]["changed"] == 0, check.table()
        quota = core_v1.read_namespaced_resource_quota("gpu-quota", "gpuforge-ansible")
        assert quota.spec.hard == {"requests.nvidia.com/gpu": "4"}
        pods = core_v1.list_namespaced_pod("gpuforge-ansible", label_selector="app=gpu-app").items
        assert [(p.spec.node_name, p.status.phase) for p in pods] == [(H100, "Running")]
        wait_for("quota usage", lambda: (core_v1.read_namespaced_resource_quota("gpu-quota", "gpuforge-ansible")
                                         .status.used or {}).get("requests.nvidia.com/gpu") == "1")
    finally:
        core_v1.delete_namespace("gpuforge-ansible")
        wait_for("namespace gpuforge-ansible gone", lambda: "gpuforge-ansible" not in
                 [n.metadata.name for n in core_v1.list_namespace().items], timeout=90)


# --- scheduling GPUs ------------------------------------------------------------------------

def test_gpu_pods_go_where_there_is_room(core_v1, namespace):
    """2-GPU pods fit only the H100 node (the T4 has 1, the A100's GPUs are MIG devices)."""
    for i in range(4):
        core_v1.create_namespaced_pod(namespace, gpu_pod(f"two-{i}", {"nvidia.com/gpu": 2}))
    for i in range(4):
        node, phase, _ = wait_running(core_v1, namespace, f"two-{i}")
        assert node == H100
    # 8 of 8 H100 GPUs are taken: the next 2-GPU pod cannot run anywhere
    core_v1.create_namespaced_pod(namespace, gpu_pod("two-4", {"nvidia.com/gpu": 2}))
    node, phase, cond = wait_unschedulable(core_v1, namespace, "two-4")
    assert (node, phase) == (None, "Pending")
    assert "Insufficient nvidia.com/gpu" in cond.message
    # a 1-GPU pod still has room, on the T4
    core_v1.create_namespaced_pod(namespace, gpu_pod("one", {"nvidia.com/gpu": 1}))
    assert wait_running(core_v1, namespace, "one")[0] == T4
    # a MIG slice goes to the A100 node
    core_v1.create_namespaced_pod(namespace, gpu_pod("mig", {"nvidia.com/mig-1g.20gb": 1}))
    assert wait_running(core_v1, namespace, "mig")[0] == A100
    # freeing two H100 GPUs lets the pending pod run
    core_v1.delete_namespaced_pod("two-0", namespace, grace_period_seconds=0)
    assert wait_running(core_v1, namespace, "two-4")[0] == H100


def test_more_gpus_than_any_node_stays_pending(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, gpu_pod("nine", {"nvidia.com/gpu": 9}))
    node, phase, cond = wait_unschedulable(core_v1, namespace, "nine")
    assert (node, phase) == (None, "Pending")
    # the scheduler's own account: 5 nodes, the control plane tainted, the others short of GPUs
    assert cond.message.startswith("0/5 nodes are available:")
    assert "Insufficient nvidia.com/gpu" in cond.message
    assert "untolerated taint" in cond.message
    events = core_v1.list_namespaced_event(namespace, field_selector="involvedObject.name=nine").items
    assert any(e.reason == "FailedScheduling" and "Insufficient nvidia.com/gpu" in e.message for e in events)


def test_gpu_resource_quota_rejects_what_exceeds_it(core_v1, namespace):
    core_v1.create_namespaced_resource_quota(namespace, {"metadata": {"name": "gpus"},
                                                         "spec": {"hard": {"requests.nvidia.com/gpu": "2"}}})
    # the quota controller fills status.hard before admission counts against it
    wait_for("quota status", lambda: core_v1.read_namespaced_resource_quota("gpus", namespace).status.hard)
    with pytest.raises(ApiException) as exc:
        core_v1.create_namespaced_pod(namespace, gpu_pod("three", {"nvidia.com/gpu": 3}))
    assert exc.value.status == 403
    body = json.loads(exc.value.body)
    assert "exceeded quota: gpus" in body["message"]
    assert "requested: requests.nvidia.com/gpu=3" in body["message"]
    assert "limited: requests.nvidia.com/gpu=2" in body["message"]
    core_v1.create_namespaced_pod(namespace, gpu_pod("two", {"nvidia.com/gpu": 2}))
    with pytest.raises(ApiException) as exc:
        core_v1.create_namespaced_pod(namespace, gpu_pod("one-more", {"nvidia.com/gpu": 1}))
    assert exc.value.status == 403
    assert "used: requests.nvidia.com/gpu=2" in json.loads(exc.value.body)["message"]
    # CPU-only pods are not counted against a GPU quota
    core_v1.create_namespaced_pod(namespace, gpu_pod("cpu", {"cpu": "1"}))


# --- custom resources -----------------------------------------------------------------------

def crd_files():
    root = find_shared_dir() / "crds"
    return sorted(p for p in root.rglob("*.yaml") if p.name != "kustomization.yaml")


def test_every_shared_crd_is_established(harness, api):
    files = crd_files()
    assert len(files) >= 20
    for path in files:
        harness.kubectl("apply", "--server-side", "-f", str(path))
    ext = client.ApiextensionsV1Api(api)
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in files]
    for name in names:
        wait_for(f"CRD {name} Established", lambda name=name: any(
            c.type == "Established" and c.status == "True"
            for c in ext.read_custom_resource_definition(name).status.conditions or []))


def test_custom_resources_are_validated_and_defaulted(harness, api, namespace):
    harness.kubectl("apply", "--server-side", "-f", str(find_shared_dir() / "crds" / "kueue"),
                    "-f", str(find_shared_dir() / "crds" / "seldon-core-v2" / "mlops.seldon.io_models.yaml"))
    custom = client.CustomObjectsApi(api)
    wait_for("the kueue API", lambda: harness.kubectl("get", "clusterqueues.kueue.x-k8s.io", check=False)
             .returncode == 0)
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
              "metadata": {"name": "h100"}, "spec": {"nodeLabels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}}
    custom.create_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "resourceflavors", flavor)

    def queue(name, resources):
        return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": name},
                "spec": {"namespaceSelector": {}, "resourceGroups": [{
                    "coveredResources": ["nvidia.com/gpu", "cpu"],
                    "flavors": [{"name": "h100", "resources": resources}]}]}}

    try:
        good = custom.create_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "clusterqueues", queue(
            "team-a", [{"name": "nvidia.com/gpu", "nominalQuota": 8}, {"name": "cpu", "nominalQuota": 64}]))
        # schema defaults applied by the API server
        assert good["spec"]["queueingStrategy"] == "BestEffortFIFO"
        assert good["spec"]["stopPolicy"] == "None"
        # a CEL rule of the schema: each flavor covers exactly the covered resources
        with pytest.raises(ApiException) as exc:
            custom.create_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "clusterqueues", queue(
                "team-b", [{"name": "nvidia.com/gpu", "nominalQuota": 8}]))
        assert exc.value.status == 422
        assert "flavors must have the same number of resources as the coveredResources" in exc.value.body
        # a structural error: a quantity that is not one
        with pytest.raises(ApiException) as exc:
            custom.create_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "clusterqueues", queue(
                "team-c", [{"name": "nvidia.com/gpu", "nominalQuota": "eight"}, {"name": "cpu", "nominalQuota": 1}]))
        assert exc.value.status == 422
        assert "nominalQuota" in exc.value.body
    finally:
        for name in ("team-a", "team-b", "team-c"):
            try:
                custom.delete_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "clusterqueues", name)
            except ApiException:
                pass
        custom.delete_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "resourceflavors", "h100")
    # Seldon's Model requires spec.storageUri
    model = {"apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Model", "metadata": {"name": "iris"},
             "spec": {"requirements": ["sklearn"]}}
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object("mlops.seldon.io", "v1alpha1", namespace, "models", model)
    assert exc.value.status == 422
    assert "spec.storageUri: Required value" in exc.value.body
    model["spec"]["storageUri"] = "gs://models/iris"
    created = custom.create_namespaced_custom_object("mlops.seldon.io", "v1alpha1", namespace, "models", model)
    assert created["spec"]["storageUri"] == "gs://models/iris"


# --- helm ---------------------------------------------------------------------------------

def test_helm_installs_the_device_plugin_chart_onto_gpu_nodes(harness, core_v1):
    chart = find_shared_dir() / "charts" / "nvidia-device-plugin" / "deployments" / "helm" / "nvidia-device-plugin"
    env_args = ["--kubeconfig", str(harness.kubeconfig)]
    version = k8s_harness.versions()["HELM_VERSION"]
    out = subprocess.run([harness.tool("helm"), "version", "--template", "{{.Version}}"],
                         capture_output=True, text=True, check=True).stdout
    assert out == version
    proc = subprocess.run([harness.tool("helm"), "install", "nvdp", str(chart), "--namespace", "nvidia-device-plugin",
                           "--create-namespace", "--wait", "--timeout", "120s", *env_args],
                          capture_output=True, text=True, check=False, timeout=180)
    try:
        assert proc.returncode == 0, proc.stderr
        pods = core_v1.list_namespaced_pod("nvidia-device-plugin").items
        # the chart's node affinity selects nodes labelled nvidia.com/gpu.present=true: the three GPU nodes
        assert sorted(p.spec.node_name for p in pods) == sorted([A100, H100, T4])
        assert {p.status.phase for p in pods} == {"Running"}
    finally:
        subprocess.run([harness.tool("helm"), "uninstall", "nvdp", "--namespace", "nvidia-device-plugin", "--wait",
                        *env_args], capture_output=True, text=True, check=False, timeout=180)
        core_v1.delete_namespace("nvidia-device-plugin")


def test_every_node_reports_the_kubelet_version(harness, core_v1):
    """kwok writes its own version into nodeInfo when its first status write races the harness's;
    the harness puts the release back before it says the nodes are Ready (upgrade tests rely on it)."""
    version = k8s_harness.versions()["KUBERNETES_VERSION"]
    assert {n.metadata.name: n.status.node_info.kubelet_version for n in core_v1.list_node().items} == {
        name: version for name in harness.state["nodes"]}
