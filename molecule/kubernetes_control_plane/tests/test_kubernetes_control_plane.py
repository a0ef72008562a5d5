"""Verifier of gpuforge.cluster.kubernetes_control_plane (molecule.yml): the kubeadm configurations
and kube-vip static pods the role wrote in each control plane's folder, checked with the real
kubeadm and API server of the Kubernetes test harness, and the admin kubeconfig on the controller."""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from gpuforge import k8s_harness

CACHE = Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge")
HARNESS = CACHE / "k8s" / "clusters" / "molecule-control-plane"
STATE = json.loads((HARNESS / "state.json").read_text())
BIN = Path(STATE["bin_dir"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
DIRS = {"cp-01": HARNESS, "cp-02": EPHEMERAL / "cp-02" / "etc-kubernetes", "cp-03": EPHEMERAL / "cp-03" / "etc-kubernetes"}
ADDRESSES = {"cp-01": "192.0.2.11", "cp-02": "192.0.2.12", "cp-03": "192.0.2.13"}
VIP = "192.0.2.10"


def run(*argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False, **kw)


def documents(host):
    return {d["kind"]: d for d in yaml.safe_load_all((DIRS[host] / "gpuforge" / "kubeadm-config.yaml").read_text()) if d}


@pytest.mark.parametrize("host", sorted(DIRS))
def test_configuration_is_valid_for_kubeadm(host):
    path = DIRS[host] / "gpuforge" / "kubeadm-config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    result = run(BIN / "kubeadm", "config", "validate", "--config", path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("host", sorted(DIRS))
def test_configuration_carries_the_inventory(host):
    docs = documents(host)
    init, cluster, kubelet = docs["InitConfiguration"], docs["ClusterConfiguration"], docs["KubeletConfiguration"]
    assert init["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["localAPIEndpoint"] == {"advertiseAddress": ADDRESSES[host], "bindPort": 6443}
    assert init["nodeRegistration"]["name"] == host
    assert init["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert cluster["clusterName"] == "gpu-lab"
    assert cluster["kubernetesVersion"] == "v1.37.2"
    assert cluster["controlPlaneEndpoint"] == f"{VIP}:6443"
    assert cluster["networking"] == {"podSubnet": "10.32.0.0/16", "serviceSubnet": "10.112.0.0/16",
                                     "dnsDomain": "cluster.local"}
    assert cluster["apiServer"]["certSANs"] == [VIP, "api.gpu-lab.example.internal"]
    for component in ("apiServer", "controllerManager", "scheduler"):
        assert cluster[component]["extraArgs"] == [{"name": "feature-gates", "value": "DynamicResourceAllocation=true"}]
    assert "imageRepository" not in cluster
    assert kubelet["cgroupDriver"] == "systemd" and kubelet["maxPods"] == 150
    assert kubelet["featureGates"] == {"DynamicResourceAllocation": True}


def test_init_dry_run_renders_the_cluster_the_inventory_describes(tmp_path):
    """kubeadm init --dry-run with cp-01's configuration (fresh certificates in a temporary folder)."""
    docs = list(yaml.safe_load_all((DIRS["cp-01"] / "gpuforge" / "kubeadm-config.yaml").read_text()))
    for doc in docs:
        if doc and doc["kind"] == "ClusterConfiguration":
            doc["certificatesDir"] = str(tmp_path / "pki")
    config = tmp_path / "kubeadm.yaml"
    config.write_text(yaml.safe_dump_all(docs))
    result = k8s_harness.kubeadm_init_dry_run(config, tmp_path / "dry")
    assert result["rc"] == 0, result["stderr"][-2000:]
    apiserver = result["files"]["/etc/kubernetes/manifests/kube-apiserver.yaml"]
    assert "--service-cluster-ip-range=10.112.0.0/16" in apiserver
    assert "--advertise-address=192.0.2.11" in apiserver
    assert "--feature-gates=DynamicResourceAllocation=true" in apiserver
    manager = result["files"]["/etc/kubernetes/manifests/kube-controller-manager.yaml"]
    assert "--cluster-cidr=10.32.0.0/16" in manager
    cert = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", tmp_path / "pki" / "apiserver.crt")
    if cert.returncode != 0:  # kubeadm keeps dry-run certificates in its dry-run folder
        found = sorted((tmp_path / "dry").rglob("apiserver.crt"))
        assert found, "kubeadm wrote no apiserver certificate"
        cert = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", found[0])
    assert cert.returncode == 0, cert.stderr
    for san in (f"IP Address:{VIP}", "DNS:api.gpu-lab.example.internal", "IP Address:192.0.2.11", "IP Address:10.112.0.1"):
        assert san in cert.stdout


@pytest.mark.parametrize("host", sorted(DIRS))
def test_kube_vip_static_pod(host):
    path = DIRS[host] / "manifests" / "kube-vip.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pod = yaml.safe_load(path.read_text())
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["address"] == VIP and env["vip_interface"] == "eth0" and env["port"] == "6443"
    assert env["cp_enable"] == "true" and env["vip_leaderelection"] == "true"
    assert pod["spec"]["containers"][0]["image"] == "mirror.example.internal:5000/kube-vip/kube-vip:v1.0.3"
    # The cluster exists: every control plane's kube-vip reads admin.conf (super-admin.conf only during init).
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == f"{DIRS[host]}/admin.conf"
    admitted = run(BIN / "kubectl", "--kubeconfig", HARNESS / "admin.conf", "apply", "--dry-run=server", "-o", "json",
                   "-f", path)
    assert admitted.returncode == 0, admitted.stderr
    assert json.loads(admitted.stdout)["spec"]["hostNetwork"] is True


def test_no_join_and_no_init_on_an_existing_cluster():
    for host, folder in DIRS.items():
        assert not (folder / "gpuforge" / "kubeadm-join.yaml").exists(), host
    tokens = run(BIN / "kubeadm", "token", "list", "--kubeconfig", HARNESS / "admin.conf")
    assert tokens.returncode == 0 and "gpuforge join" not in tokens.stdout


def test_admin_kubeconfig_on_the_controller():
    path = EPHEMERAL / "artifacts" / "admin.conf"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == (HARNESS / "admin.conf").read_bytes()
    nodes = run(BIN / "kubectl", "--kubeconfig", path, "get", "nodes", "-o", "name")
    assert nodes.returncode == 0, nodes.stderr
    assert sorted(nodes.stdout.split()) == ["node/cp-01", "node/cp-02", "node/cp-03"]
