"""Verifier of gpuforge.cluster.kubernetes_node on the two lab hosts of molecule/kubernetes_node:
kubeadm, kubelet and kubectl v1.37.2 from a folder of release binaries (the harness build),
kubelet's unit and kubeadm's drop-in, KUBELET_EXTRA_ARGS, the preflight prerequisites.
"""

import hashlib
import json
import os
from pathlib import Path

import pytest

VERSION = "v1.37.2"
BIN = Path(os.environ.get("GPUFORGE_K8S_CACHE") or Path.home() / ".cache" / "gpuforge" / "k8s") / VERSION / "bin"
HOST1 = "gf-mol-kubernetes_node-1"


def name(host):
    return host.backend.get_hostname()


@pytest.mark.parametrize("binary", ["kubeadm", "kubelet", "kubectl"])
def test_binaries_are_the_release_files(host, binary):
    f = host.file(f"/usr/local/bin/{binary}")
    assert f.is_file and f.mode == 0o755 and f.user == "root"
    assert f.sha256sum == hashlib.sha256((BIN / binary).read_bytes()).hexdigest()


def test_versions(host):
    assert host.check_output("kubeadm version -o short") == VERSION
    assert host.check_output("kubelet --version") == f"Kubernetes {VERSION}"
    client = json.loads(host.check_output("kubectl version --client -o json"))
    assert client["clientVersion"]["gitVersion"] == VERSION


def test_kubelet_unit_with_kubeadm_dropin(host):
    assert host.service("kubelet").is_enabled
    shown = host.check_output("systemctl cat kubelet")
    assert "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf" in shown
    exec_start = host.check_output("systemctl show kubelet -p ExecStart")
    assert "/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS " \
           "$KUBELET_EXTRA_ARGS" in exec_start
    env_files = host.check_output("systemctl show kubelet -p EnvironmentFiles")
    assert "/var/lib/kubelet/kubeadm-flags.env" in env_files and "/etc/default/kubelet" in env_files


def test_kubelet_extra_args(host):
    content = host.file("/etc/default/kubelet").content_string
    expected = '--node-ip=10.30.0.31 --max-pods=110' if name(host) == HOST1 else ''
    assert f'KUBELET_EXTRA_ARGS="{expected}"' in content


@pytest.mark.parametrize("package", ["conntrack", "socat", "ethtool", "iptables", "iproute2"])
def test_preflight_prerequisites(host, package):
    assert host.package(package).is_installed


def test_kubeadm_on_the_host_validates_a_config(host):
    # nodeRegistration.name is given: kubeadm would take the hostname, and these lab hostnames
    # hold '_' (not a valid node name: kubeadm says so, as the preflight role does for inventories)
    config = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: node-1\n"
              "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
              f"kubernetesVersion: {VERSION}\nnetworking:\n  podSubnet: 10.244.0.0/16\n")
    out = host.run(f"printf '%s' '{config}' > /tmp/kubeadm.yaml && kubeadm config validate --config /tmp/kubeadm.yaml")
    assert (out.rc, out.stdout.strip()) == (0, "ok"), out.stderr
    # and refuses a node name with '_', the hostname of these lab hosts
    cluster_only = config.split("---\n", 1)[1]
    bad = host.run(f"printf '%s' '{cluster_only}' > /tmp/cluster.yaml && kubeadm config validate --config /tmp/cluster.yaml")
    assert bad.rc != 0 and "nodeRegistration.name" in bad.stderr and name(host) in bad.stderr
