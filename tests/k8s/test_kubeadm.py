"""The real kubeadm (built from source) checks kubeadm configurations the way the bootstrap roles need.

`kubeadm config validate`, `config print`, `config images list` and `init --dry-run` run without a
kubelet or a container runtime; `init --dry-run` writes only into KUBEADM_INIT_DRYRUN_DIR (a
temporary folder here) and prints the static-pod manifests and kubelet configuration it would write.
"""

import os
import subprocess

import pytest
import yaml

from gpuforge import k8s_harness

VERSION = k8s_harness.versions()["KUBERNETES_VERSION"]

# What a control-plane host's configuration looks like (addresses from inventories/example).
CONFIG = [
    {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
     "localAPIEndpoint": {"advertiseAddress": "10.20.0.11", "bindPort": 6443},
     "nodeRegistration": {"name": "cp-01", "criSocket": "unix:///run/containerd/containerd.sock"}},
    {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": VERSION,
     "clusterName": "gpuforge", "controlPlaneEndpoint": "10.20.0.10:6443",
     "imageRepository": "mirror.site.internal:5000/k8s",
     "networking": {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"}},
    {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"},
]


def kubeadm(k8s_bin, *args, env=None):
    return subprocess.run([str(k8s_bin / "kubeadm"), *args], capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, **(env or {})})


def write(tmp_path, docs, name="kubeadm.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_version_is_stamped(k8s_bin):
    assert kubeadm(k8s_bin, "version", "-o", "short").stdout.strip() == VERSION


def test_print_init_defaults(k8s_bin):
    proc = kubeadm(k8s_bin, "config", "print", "init-defaults")
    assert proc.returncode == 0, proc.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(proc.stdout)}
    assert set(docs) == {"InitConfiguration", "ClusterConfiguration"}
    minor = VERSION.lstrip("v").rsplit(".", 1)[0]
    assert docs["ClusterConfiguration"]["kubernetesVersion"] == f"{minor}.0"
    assert docs["ClusterConfiguration"]["networking"]["serviceSubnet"] == "10.96.0.0/12"
    assert docs["InitConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta4"


def test_validate_accepts_a_control_plane_config(k8s_bin, tmp_path):
    proc = kubeadm(k8s_bin, "config", "validate", "--config", str(write(tmp_path, CONFIG)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_harness_own_config_is_valid(k8s_bin, harness, tmp_path):
    path = tmp_path / "harness.yaml"
    path.write_text(harness.kubeadm_config())
    proc = kubeadm(k8s_bin, "config", "validate", "--config", str(path))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("change, message", [
    (lambda c: c[1]["networking"].update(podSubnet="10.244.0.0/33"),
     'networking.podSubnet: Invalid value: "10.244.0.0/33": couldn\'t parse subnet'),
    (lambda c: c[1].update(notAField=1), 'strict decoding error: unknown field "notAField"'),
    (lambda c: c[1].update(kubernetesVersion="v1.30.0"),
     "this version of kubeadm only supports deploying clusters with the control plane version >="),
    (lambda c: c[0]["localAPIEndpoint"].update(bindPort=70000), "localAPIEndpoint.bindPort: Invalid value: 70000"),
    # component configs are decoded strictly too (a typo is not silently dropped)
    (lambda c: c[2].update(cgroupDrivr="systemd"), 'KubeletConfiguration"}: strict decoding error: unknown field '
                                                   '"cgroupDrivr"'),
])
def test_validate_rejects_bad_configs(k8s_bin, tmp_path, change, message):
    docs = yaml.safe_load(yaml.safe_dump(CONFIG))
    change(docs)
    proc = kubeadm(k8s_bin, "config", "validate", "--config", str(write(tmp_path, docs)))
    assert proc.returncode != 0
    assert message in proc.stderr


def test_validate_does_not_check_kubelet_values(k8s_bin, tmp_path):
    """kubeadm passes KubeletConfiguration values through: gpuforge's own validation has to catch them."""
    docs = yaml.safe_load(yaml.safe_dump(CONFIG))
    docs[2]["cgroupDriver"] = "sometimes"
    proc = kubeadm(k8s_bin, "config", "validate", "--config", str(write(tmp_path, docs)))
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok")


def test_images_come_from_the_configured_repository(k8s_bin, tmp_path):
    """What an air-gapped site must mirror: every image under imageRepository, at the pinned version."""
    proc = kubeadm(k8s_bin, "config", "images", "list", "--config", str(write(tmp_path, CONFIG)))
    assert proc.returncode == 0, proc.stderr
    images = proc.stdout.split()
    assert all(i.startswith("mirror.site.internal:5000/k8s/") for i in images)
    names = {i.rsplit("/", 1)[1].split(":")[0]: i.rsplit(":", 1)[1] for i in images}
    assert {names[c] for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")} == {VERSION}
    assert names["etcd"].startswith(k8s_harness.versions()["ETCD_VERSION"].lstrip("v").rsplit(".", 1)[0])


def flags(manifest):
    pod = yaml.safe_load(manifest)
    command = pod["spec"]["containers"][0]["command"]
    return dict(arg[2:].split("=", 1) for arg in command[1:])


def test_init_dry_run_renders_the_control_plane(k8s_bin, harness, tmp_path):
    dry = tmp_path / "dry-run"
    result = k8s_harness.kubeadm_init_dry_run(write(tmp_path, CONFIG), dry)
    assert result["rc"] == 0, result["stderr"][-2000:]
    files = result["files"]
    manifests = "/etc/kubernetes/manifests/"
    assert {f"{manifests}{c}.yaml" for c in ("etcd", "kube-apiserver", "kube-controller-manager",
                                              "kube-scheduler")} <= set(files)
    api = flags(files[f"{manifests}kube-apiserver.yaml"])
    assert api["advertise-address"] == "10.20.0.11"
    assert api["service-cluster-ip-range"] == "10.96.0.0/12"
    assert api["secure-port"] == "6443"
    cm = flags(files[f"{manifests}kube-controller-manager.yaml"])
    assert (cm["cluster-cidr"], cm["allocate-node-cidrs"]) == ("10.244.0.0/16", "true")
    assert yaml.safe_load(files[f"{manifests}kube-apiserver.yaml"])["spec"]["containers"][0]["image"] == \
        f"mirror.site.internal:5000/k8s/kube-apiserver:{VERSION}"
    kubelet = yaml.safe_load(files["/var/lib/kubelet/config.yaml"])
    assert kubelet["cgroupDriver"] == "systemd"
    # certificates for the control-plane endpoint were made in the dry-run folder, nothing under /etc
    cert = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(dry / "apiserver.crt")],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:10.20.0.10" in cert and "IP Address:10.20.0.11" in cert
    assert not os.path.exists(f"{manifests}kube-apiserver.yaml")
    # the harness runs the API server and controller-manager with the flags kubeadm writes
    for component, ours in (("kube-apiserver", harness._argv("kube-apiserver")),
                            ("kube-controller-manager", harness._argv("kube-controller-manager"))):
        expected = set(flags(files[f"{manifests}{component}.yaml"]))
        # the harness runs no node IPAM (kwok nodes get no pod CIDR): kubeadm sets these from podSubnet
        expected -= {"allocate-node-cidrs", "cluster-cidr"}
        assert expected <= {arg[2:].split("=", 1)[0] for arg in ours[1:]}, component
