"""gpuforge.cluster.kubernetes_control_plane and kubernetes_worker against the harness, for what
needs more than the Molecule scenario's existing cluster: the kubeadm configuration of each
cluster shape checked with `kubeadm init --dry-run`, and joining, checked with `kubeadm join
--dry-run` on the JoinConfiguration the roles write from the credentials they made on the first
control plane (real bootstrap tokens, CA hash and certificate key, validated by the API server).
Only the final `kubeadm init` / `kubeadm join` commands need a kubelet: real hosts only."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuforge import k8s_harness

from k8s_helpers import ansible_playbook, recap

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PLAYBOOK = HERE / "playbooks" / "kubeadm_roles.yml"


def ansible(inventory, bin_dir, *extra, check=True):
    proc = ansible_playbook(inventory, bin_dir, PLAYBOOK, "-v", *extra)
    if check:
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc



def inventory(tmp_path, harness, control_planes, workers=(), **cluster):
    hosts = {}
    for number, name in enumerate(control_planes):
        hosts[name] = {"gpuforge_node_ip": f"192.0.2.{21 + number}",
                       "gpuforge_kubeadm_dir": str(harness.workdir if number == 0 else tmp_path / name)}
    for name in workers:
        hosts[name] = {"gpuforge_kubeadm_dir": str(tmp_path / name)}
    data = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "gpuforge_kubeconfig": str(tmp_path / "artifacts" / "admin.conf"), **cluster},
        "children": {"k8s_cluster": {"children": {
            "control_plane": {"hosts": {h: hosts[h] for h in control_planes}},
            "workers": {"hosts": {h: hosts[h] for h in workers}}}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def rendered(harness):
    return {d["kind"]: d for d in yaml.safe_load_all((harness.workdir / "gpuforge" / "kubeadm-config.yaml").read_text()) if d}


def init_dry_run(harness, tmp_path):
    docs = list(rendered(harness).values())
    docs[1]["certificatesDir"] = str(tmp_path / "dry-pki")
    config = tmp_path / "init.yaml"
    config.write_text(yaml.safe_dump_all(docs))
    result = k8s_harness.kubeadm_init_dry_run(config, tmp_path / "dry")
    assert result["rc"] == 0, result["stderr"][-3000:]
    return result["files"]


SHAPES = {
    "single": ({}, {"endpoint": "192.0.2.21:6443", "pods": "10.244.0.0/16", "services": "10.96.0.0/12"}),
    "custom-cidrs": ({"gpuforge_pod_subnet": "172.20.0.0/14",
                      "gpuforge_service_subnet": "172.16.0.0/16",
                      "gpuforge_dns_domain": "gpu.internal",
                      "kubernetes_control_plane_image_repository": "mirror.example.internal:5000/k8s",
                      "kubernetes_control_plane_skip_phases": ["addon/kube-proxy"]},
                     {"endpoint": "192.0.2.21:6443", "pods": "172.20.0.0/14", "services": "172.16.0.0/16"}),
    # what a lab of containers needs (inventories/lab): kubeadm's kernel check ignored, the kubelet on cgroup v1
    "lab": ({"gpuforge_lab": True, "gpuforge_kubeadm_ignore_preflight_errors": ["SystemVerification"],
             "kubernetes_control_plane_kubelet_config": {"failCgroupV1": False, "failSwapOn": False}},
            {"endpoint": "192.0.2.21:6443", "pods": "10.244.0.0/16", "services": "10.96.0.0/12"}),
    "external-lb": ({"gpuforge_ha_mode": "external",
                     "gpuforge_control_plane_endpoint": "k8s-api.example.internal:8443"},
                    {"endpoint": "k8s-api.example.internal:8443", "pods": "10.244.0.0/16", "services": "10.96.0.0/12"}),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_cluster_shapes_render_what_kubeadm_init_accepts(harness, k8s_bin, tmp_path, shape):
    variables, want = SHAPES[shape]
    out = ansible(inventory(tmp_path, harness, ["cp-01"], **variables), k8s_bin).stdout
    assert recap(out)["cp-01"]["failed"] == 0
    cluster = rendered(harness)["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == want["endpoint"]
    assert cluster["networking"]["podSubnet"] == want["pods"]
    assert cluster["networking"]["serviceSubnet"] == want["services"]
    files = init_dry_run(harness, tmp_path)
    apiserver = files["/etc/kubernetes/manifests/kube-apiserver.yaml"]
    assert f"--service-cluster-ip-range={want['services']}" in apiserver
    assert f"--cluster-cidr={want['pods']}" in files["/etc/kubernetes/manifests/kube-controller-manager.yaml"]
    if shape == "custom-cidrs":
        assert "image: mirror.example.internal:5000/k8s/kube-apiserver:v1.37.2" in apiserver
        assert rendered(harness)["InitConfiguration"]["skipPhases"] == ["addon/kube-proxy"]
        assert "clusterDomain: gpu.internal" in files["/var/lib/kubelet/config.yaml"]
    registration = rendered(harness)["InitConfiguration"]["nodeRegistration"]
    if shape == "lab":
        assert registration["ignorePreflightErrors"] == ["SystemVerification"]
        kubelet = yaml.safe_load(files["/var/lib/kubelet/config.yaml"])
        assert (kubelet["failCgroupV1"], kubelet["failSwapOn"]) == (False, False)
    else:
        assert "ignorePreflightErrors" not in registration


def test_bad_variables_stop_before_anything_is_written(harness, k8s_bin, tmp_path):
    config = harness.workdir / "gpuforge" / "kubeadm-config.yaml"
    before = config.read_text() if config.exists() else None
    proc = ansible(inventory(tmp_path, harness, ["cp-01"], gpuforge_pod_subnet="10.96.0.0/16"), k8s_bin,
                   check=False)
    assert proc.returncode != 0
    assert "cp-01: gpuforge_service_subnet 10.96.0.0/12 overlaps gpuforge_pod_subnet " \
           "10.96.0.0/16" in proc.stdout
    assert (config.read_text() if config.exists() else None) == before


@pytest.fixture
def bootstrap_ready(harness, k8s_bin):
    """What kubeadm init leaves for joining nodes: the bootstrap-token RBAC and the cluster-info ConfigMap."""
    subprocess.run([str(k8s_bin / "kubeadm"), "init", "phase", "bootstrap-token", "--kubeconfig", str(harness.kubeconfig),
                    "--config", str(harness.workdir / "kubeadm.yaml")], check=True, capture_output=True, timeout=120)


def tokens(harness, k8s_bin):
    out = subprocess.run([str(k8s_bin / "kubeadm"), "token", "list", "--kubeconfig", str(harness.kubeconfig)],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [line for line in out.splitlines() if "gpuforge join of" in line]


def test_join_credentials_pass_kubeadm_join_dry_run(harness, k8s_bin, tmp_path, bootstrap_ready):
    path = inventory(tmp_path, harness, ["cp-01", "cp-02"], ["wk-01"],
                     gpuforge_control_plane_endpoint=f"127.0.0.1:{harness.state['ports']['kube-apiserver']}",
                     gpuforge_ha_mode="external")
    before = len(tokens(harness, k8s_bin))
    proc = ansible(path, k8s_bin, "-e", "__kubernetes_control_plane_join_config_only=true")
    joins = {h: tmp_path / h / "gpuforge" / "kubeadm-join.yaml" for h in ("cp-02", "wk-01")}
    secrets = []
    for host, join in joins.items():
        config = next(d for d in yaml.safe_load_all(join.read_text()) if d)
        assert oct(join.stat().st_mode & 0o777) == "0o600"
        token = config["discovery"]["bootstrapToken"]
        assert token["apiServerEndpoint"] == f"127.0.0.1:{harness.state['ports']['kube-apiserver']}"
        assert config["nodeRegistration"]["name"] == host
        secrets.append(token["token"])
        if host == "cp-02":
            assert config["controlPlane"]["localAPIEndpoint"] == {"advertiseAddress": "192.0.2.22", "bindPort": 6443}
            secrets.append(config["controlPlane"]["certificateKey"])
        else:
            assert "controlPlane" not in config
        dry = subprocess.run([str(k8s_bin / "kubeadm"), "join", "--dry-run", "--config", str(join),
                              "--ignore-preflight-errors=all"], capture_output=True, text=True, timeout=180, check=False,
                             env={**os.environ, "KUBEADM_JOIN_DRYRUN_DIR": str(tmp_path / f"dry-{host}")})
        assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
        assert "This node has joined the cluster" in dry.stdout
        if host == "cp-02":  # the certificate key decrypted the certificates kubeadm keeps in the cluster
            assert "[download-certs] Downloading the certificates in Secret \"kubeadm-certs\"" in dry.stdout + dry.stderr
    # one token per joining node, described, and never in the output (even with -v)
    assert len(tokens(harness, k8s_bin)) == before + 2
    assert all(len(s) > 20 and s not in proc.stdout + proc.stderr for s in secrets)
    # nodes that have joined (kubelet.conf) get no token and no change
    for host in joins:
        (tmp_path / host / "kubelet.conf").write_text("joined\n")
    again = ansible(path, k8s_bin)
    assert {h: c["changed"] for h, c in recap(again.stdout).items()} == {"cp-01": 0, "cp-02": 0, "wk-01": 0}
    assert len(tokens(harness, k8s_bin)) == before + 2


def test_a_wrong_certificate_key_is_refused(harness, k8s_bin, tmp_path, bootstrap_ready):
    """The dry run above would not notice a useless certificate key unless kubeadm checks it: it does."""
    path = inventory(tmp_path, harness, ["cp-01", "cp-02"],
                     gpuforge_control_plane_endpoint=f"127.0.0.1:{harness.state['ports']['kube-apiserver']}",
                     gpuforge_ha_mode="external")
    ansible(path, k8s_bin, "-e", "__kubernetes_control_plane_join_config_only=true")
    join = tmp_path / "cp-02" / "gpuforge" / "kubeadm-join.yaml"
    config = next(d for d in yaml.safe_load_all(join.read_text()) if d)
    config["controlPlane"]["certificateKey"] = "0" * 64
    join.write_text(yaml.safe_dump(config))
    dry = subprocess.run([str(k8s_bin / "kubeadm"), "join", "--dry-run", "--config", str(join),
                          "--ignore-preflight-errors=all"], capture_output=True, text=True, timeout=180, check=False,
                         env={**os.environ, "KUBEADM_JOIN_DRYRUN_DIR": str(tmp_path / "dry")})
    assert dry.returncode != 0
    assert "download-certs: error downloading certs: error decoding secret data with provided key" in dry.stderr
