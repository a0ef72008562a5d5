"""playbooks/kubernetes.yml end to end against a harness of its own: the control plane, workers,
CNI and node objects plays wired as site.yml runs them (packages skipped: they are the
kubernetes_node scenario's). The cluster exists already (no kubelet can run here): the first
control plane's kubeadm folder is the harness's, the workers have joined (kubelet.conf), and
ConfigMap kubeadm-config holds the ClusterConfiguration the control-plane role rendered, as
`kubeadm init` would have uploaded it (the real kubeadm uploads it). The playbook must then
change only what belongs to the API (Calico, labels, taints), a second run nothing, and check
mode nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuforge import k8s_harness
from gpuforge.runner import run_playbook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODES = [k8s_harness.NodeSpec(name="cp-01", role="control-plane"), k8s_harness.NodeSpec(name="cpu-01"),
         k8s_harness.NodeSpec(name="gpu-01")]


@pytest.fixture(scope="module")
def cluster(k8s_bin):
    harness = k8s_harness.Harness.start("kubernetes-playbook", nodes=NODES, build=False)
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
def bundle():
    script = HERE / "cni_bundle.sh"
    subprocess.run(["bash", str(script)], check=True, capture_output=True, timeout=900)
    return subprocess.run(["bash", str(script), "--print-dir"], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def inventory(cluster, bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kubernetes-playbook")
    hosts = {"cp-01": {"gpuforge_kubeadm_dir": str(cluster.workdir),
                       "gpuforge_node_ip": "192.0.2.31",
                       "kubernetes_node_objects_labels": {"topology.kubernetes.io/zone": "rack-1"}}}
    for name in ("cpu-01", "gpu-01"):
        folder = tmp / name
        folder.mkdir()
        (folder / "kubelet.conf").write_text(cluster.kubeconfig.read_text())
        hosts[name] = {"gpuforge_kubeadm_dir": str(folder),
                       "kubernetes_node_objects_labels": {"gpuforge.io/pool": "gpu" if name == "gpu-01" else "cpu"}}
    hosts["gpu-01"]["kubernetes_node_objects_taints"] = [{"key": "nvidia.com/gpu", "value": "present",
                                                         "effect": "NoSchedule"}]
    # The GPU host's inventory name is not its node's: the name gpuforge_node_name sets is the one every role
    # uses (before the cluster model, kubernetes_node_objects labelled the inventory name and failed).
    hosts["gpu-host-a"] = {**hosts.pop("gpu-01"), "gpuforge_node_name": "gpu-01"}
    data = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "gpuforge_cluster_name": "gpu-lab",
                 "gpuforge_pod_subnet": "10.40.0.0/16",
                 "gpuforge_service_subnet": "10.112.0.0/16",
                 "gpuforge_kubeconfig": str(tmp / "artifacts" / "admin.conf"),
                 "cni_bundle_dir": bundle, "cni_image_registry": "mirror.example.internal:5000",
                 "cni_wait_timeout": 120},
        "children": {"k8s_cluster": {"children": {
            "control_plane": {"hosts": {"cp-01": hosts["cp-01"]}},
            "workers": {"hosts": {"cpu-01": hosts["cpu-01"]},
                        "children": {"gpu_workers": {"hosts": {"gpu-host-a": hosts["gpu-host-a"]}}}}}}}}}
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def runs(cluster, k8s_bin, inventory):
    os.environ["PATH"] = f"{k8s_bin}:{os.environ['PATH']}"  # the harness's kubeadm for the control-plane role
    play = ROOT / "playbooks" / "kubernetes.yml"
    first = run_playbook(play, inventory, skip_tags="kubernetes_node")
    # what kubeadm init uploads: the ClusterConfiguration of the configuration the role rendered
    uploaded = subprocess.run([str(k8s_bin / "kubeadm"), "init", "phase", "upload-config", "kubeadm",
                               "--kubeconfig", str(cluster.kubeconfig),
                               "--config", str(cluster.workdir / "gpuforge" / "kubeadm-config.yaml")],
                              capture_output=True, text=True, timeout=120, check=False)
    second = run_playbook(play, inventory, skip_tags="kubernetes_node")
    third = run_playbook(play, inventory, skip_tags="kubernetes_node") if second.ok else None
    check = run_playbook(play, inventory, skip_tags="kubernetes_node", check=True, diff=True) if second.ok else None
    return {"first": first, "uploaded": uploaded, "second": second, "third": third, "check": check}


def failed(run):
    return {h: d["failed_tasks"] for h, d in run.hosts.items() if d["failed_tasks"]}


def test_without_the_uploaded_configuration_the_cni_stops_naming_the_variable(runs):
    first = runs["first"]
    assert not first.ok
    assert list(failed(first)) == ["cp-01"]
    assert "gpuforge_pod_subnet" in json.dumps(failed(first)["cp-01"])


def test_the_playbook_converges_then_changes_nothing(runs):
    assert runs["uploaded"].returncode == 0, runs["uploaded"].stderr
    second = runs["second"]
    assert second.ok, failed(second)
    assert second.hosts["cp-01"]["changed"] > 0
    for name in ("third", "check"):
        run = runs[name]
        assert run is not None and run.ok, failed(run) if run else "second run failed"
        assert {h: d["changed_tasks"] for h, d in run.hosts.items() if d["changed"]} == {}, name


def kubectl(cluster, *args):
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def test_calico_runs_on_the_control_planes_pod_cidr(runs, cluster):
    assert runs["second"].ok
    daemonset = kubectl(cluster, "-n", "kube-system", "get", "daemonset", "calico-node")
    env = {e["name"]: e.get("value") for e in daemonset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CALICO_IPV4POOL_CIDR"] == "10.40.0.0/16"
    images = {c["image"] for c in daemonset["spec"]["template"]["spec"]["containers"]}
    assert images and all(i.startswith("mirror.example.internal:5000/") for i in images)
    assert daemonset["status"]["desiredNumberScheduled"] == 3


def test_nodes_carry_the_inventorys_labels_and_taints(runs, cluster):
    assert runs["second"].ok
    nodes = {n["metadata"]["name"]: n for n in kubectl(cluster, "get", "nodes")["items"]}
    assert nodes["cp-01"]["metadata"]["labels"]["topology.kubernetes.io/zone"] == "rack-1"
    assert nodes["gpu-01"]["metadata"]["labels"]["gpuforge.io/pool"] == "gpu"
    assert [t for t in nodes["gpu-01"]["spec"].get("taints", []) if t["key"] == "nvidia.com/gpu"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def test_the_admin_kubeconfig_reached_the_controller(runs, inventory):
    assert runs["second"].ok
    path = inventory.parent / "artifacts" / "admin.conf"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


# Each role's tag alone runs that role on its hosts only (check mode, after the converge: nothing changes).
TAGGED = {"kubernetes_control_plane": ["cp-01"], "kubernetes_worker": ["cpu-01", "gpu-host-a"], "cni": ["cp-01"],
          "kubernetes_node_objects": ["cp-01", "cpu-01", "gpu-host-a"]}


@pytest.mark.parametrize("tag", sorted(TAGGED))
def test_a_role_tag_alone_runs_the_role_on_its_hosts(runs, inventory, tag):
    assert runs["second"].ok
    run = run_playbook(ROOT / "playbooks" / "kubernetes.yml", inventory, tags=tag, check=True)
    assert run.ok, failed(run)

    def role(result):
        return (result.get("role") or "").split(".")[-1]

    # Ansible's argument validation of every role of the play is tagged always: it runs under any --tags
    real = [r for r in run.results if r["status"] != "skipped" and not r["task"].startswith("Validating arguments")]
    ran = {r["host"] for r in real if role(r) == tag}
    assert sorted(ran) == TAGGED[tag], (tag, sorted(ran))
    others = {role(r) for r in real} - {tag, "cluster_model", ""}
    # the worker joins through the control-plane role's join entry point (nothing to join here)
    assert others <= ({"kubernetes_control_plane"} if tag == "kubernetes_worker" else set()), (tag, others)
    assert all(d["changed"] == 0 for d in run.hosts.values()), {h: d["changed_tasks"] for h, d in run.hosts.items()}
