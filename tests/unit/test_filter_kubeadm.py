"""kubeadm filters (plugins/filter/kubeadm.py) and the control plane's variable rules, on the
real output formats of kubeadm v1.37 (join command and upload-certs as the harness's kubeadm prints them)."""

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter import kubeadm as k
from ansible_collections.gpuforge.cluster.plugins.module_utils import variable_rules as vr

from conftest import ROOT

HASH = "sha256:a40e57e78ef9b2a226f66e4c22293ee2afa4b68cb2f4403ab2395202da681d4d"
JOIN = f"kubeadm join 127.0.0.1:39197 --token gyurc8.0123456789abcdef --discovery-token-ca-cert-hash {HASH} \n"
UPLOAD = ("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n"
          "[upload-certs] Using certificate key:\n"
          "7c2a1e0f4b8d9e6a5f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d\n")


@pytest.mark.parametrize("value, expected", [
    ("10.0.0.10", {"host": "10.0.0.10", "port": 6443, "address": "10.0.0.10:6443"}),
    ("api.gpu.example.internal:8443", {"host": "api.gpu.example.internal", "port": 8443,
                                       "address": "api.gpu.example.internal:8443"}),
    ("[fd00::10]:7443", {"host": "fd00::10", "port": 7443, "address": "[fd00::10]:7443"}),
    ("fd00::10", {"host": "fd00::10", "port": 6443, "address": "[fd00::10]:6443"}),
])
def test_endpoint(value, expected):
    assert k.kubeadm_endpoint(value) == expected


@pytest.mark.parametrize("value", ["", "api:0", "api:70000", "bad_host:6443", "[fd00::10]x", "api:port"])
def test_bad_endpoint(value):
    with pytest.raises(AnsibleFilterError, match="kubeadm_endpoint"):
        k.kubeadm_endpoint(value)


def test_join_command():
    assert k.kubeadm_join_command(JOIN) == {"endpoint": "127.0.0.1:39197", "token": "gyurc8.0123456789abcdef",
                                            "ca_cert_hashes": [HASH]}


@pytest.mark.parametrize("text, message", [
    ("", "no 'kubeadm join"),
    (JOIN.replace("gyurc8.0123456789abcdef", "Bad.token"), "not a bootstrap token"),
    (JOIN.replace(HASH, "sha256:abc"), "not sha256"),
])
def test_bad_join_command(text, message):
    with pytest.raises(AnsibleFilterError, match=message):
        k.kubeadm_join_command(text)


def test_certificate_key():
    assert k.kubeadm_certificate_key(UPLOAD) == "7c2a1e0f4b8d9e6a5f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d"
    with pytest.raises(AnsibleFilterError, match="found 0"):
        k.kubeadm_certificate_key("[upload-certs] Skipping phase\n")


def test_redact_removes_every_secret():
    text = k.kubeadm_redact(JOIN + UPLOAD + "error: token gyurc8.0123456789abcdef is invalid")
    assert "gyurc8.0123456789abcdef" not in text and "a40e57e7" not in text and "7c2a1e0f" not in text
    assert "--token <token> --discovery-token-ca-cert-hash sha256:<redacted>" in text
    assert "\n<key>\n" in text


def test_extra_args_and_feature_gates():
    assert k.kubeadm_extra_args({"--audit-log-maxage": 30, "profiling": False}) == [
        {"name": "audit-log-maxage", "value": "30"}, {"name": "profiling", "value": "false"}]
    assert k.kubeadm_feature_gates({"B": False, "A": True}) == "A=true,B=false"
    with pytest.raises(AnsibleFilterError, match="A must be true or false"):
        k.kubeadm_feature_gates({"A": "yes"})


@pytest.mark.parametrize("current, target, ok, reason", [
    ("v1.37.2", "1.37.4", True, ""),
    ("v1.37.2", "1.38.0", True, ""),
    ("1.37.2", "1.37.2", True, ""),
    ("v1.37.2", "1.39.1", False, "1.37.2 to 1.39.1 skips 1.38: upgrade one minor at a time (1.38.x then 1.39.x)"),
    ("v1.37.2", "1.36.9", False, "1.36.9 is older than the running 1.37.2: kubeadm does not downgrade"),
    ("v1.37.2", "2.0.0", False, "the major version changes (1 to 2)"),
])
def test_upgrade_plan(current, target, ok, reason):
    plan = k.kubernetes_upgrade_plan(current, target)
    assert (plan["ok"], plan["reason"]) == (ok, reason)
    assert plan["change"] == (plan["current"] != plan["target"])


# The control plane's rules read the cluster-wide gpuforge_* variables (the cluster model's, roles/cluster_model)
# too; the rules of those variables moved to the cluster model (vr.RULES["cluster_model"]). Both run here, on the defaults
# of both roles, so that each case below keeps asserting the problem it did, under the variables' new names.
DEFAULTS = {**yaml.safe_load((ROOT / "roles" / "cluster_model" / "defaults" / "main.yml").read_text()),
            **yaml.safe_load((ROOT / "roles" / "kubernetes_control_plane" / "defaults" / "main.yml").read_text())}
P = "kubernetes_control_plane_"
G = "gpuforge_"


def rules(changes=None):
    values = {**DEFAULTS, **(changes or {})}
    return vr.role_variable_errors("cluster_model", values, constraints=False) + vr.kubernetes_control_plane(values)


def test_defaults_pass():
    assert rules() == []


@pytest.mark.parametrize("changes, expected", [
    ({G + "pod_subnet": "10.96.0.0/16"}, [(G + "service_subnet", G + "service_subnet 10.96.0.0/12 overlaps " + G
                                           + "pod_subnet 10.96.0.0/16")]),
    ({G + "pod_subnet": "10.244.0.1/16"}, [(G + "pod_subnet", G + "pod_subnet '10.244.0.1/16' is not a network in "
                                            "CIDR notation (e.g. 10.244.0.0/16, host bits zero)")]),
    ({G + "service_subnet": "172.0.0.0/8"}, [(G + "service_subnet", G + "service_subnet 172.0.0.0/8 is larger than "
                                             "/12, the most the API server allows")]),
    ({G + "ha_mode": "external"}, [(G + "control_plane_endpoint", G + "ha_mode external needs " + G
                                    + "control_plane_endpoint, the load balancer's host[:port]")]),
    ({G + "ha_mode": "kube_vip", G + "vip": "10.0.0.10"}, [(P + "kube_vip_image", G + "ha_mode kube_vip needs " + P
                                                            + "kube_vip_image, the kube-vip image (repository:tag) in "
                                                              "the site's registry")]),
    ({G + "ha_mode": "kube_vip", G + "vip": "10.244.1.1", P + "kube_vip_image": "m/kube-vip:v1"},
     [(G + "vip", G + "vip 10.244.1.1 is inside " + G + "pod_subnet 10.244.0.0/16")]),
    ({G + "ha_mode": "kube_vip", G + "vip": "10.0.0.10", P + "kube_vip_image": "m/kube-vip:v1",
      G + "control_plane_endpoint": "10.0.0.11"},
     [(G + "control_plane_endpoint", G + "control_plane_endpoint 10.0.0.11 is not " + G + "vip 10.0.0.10: with "
       "kube_vip the endpoint is the VIP (leave " + G + "control_plane_endpoint empty)")]),
    ({G + "vip": "10.0.0.10"}, [(G + "vip", G + "vip is set but " + G + "ha_mode is none, not kube_vip")]),
    ({P + "join_token_ttl": "0s"}, [(P + "join_token_ttl", P + "join_token_ttl '0s' is not a duration above zero "
                                     "such as 30m or 1h (0 would make tokens that never expire)")]),
    ({P + "feature_gates": {"A": "on"}}, [(P + "feature_gates", P + "feature_gates: A must be true or false")]),
    # the message now says why (names.dns1123_problems)
    ({G + "node_name": "GPU_01"}, [(G + "node_name", G + "node_name 'GPU_01' is not a lowercase DNS-1123 name: it "
                                    "has uppercase letters and has characters other than a-z, 0-9, '-' and '.' "
                                    "('_')")]),
    # and a 'v' before a release gets a hint
    ({G + "kubernetes_version": "v1.37.2"}, [(G + "kubernetes_version", G + "kubernetes_version 'v1.37.2' is not a "
                                              "release such as '1.37.2' (X.Y.Z, no 'v'); drop the 'v'")]),
    ({P + "api_sans": ["ok.example.internal", "bad name"]}, [(P + "api_sans", P + "api_sans: 'bad name' is neither "
                                                                                "an IP address nor a DNS name")]),
    ({G + "cri_socket": "/run/containerd/containerd.sock"}, [(G + "cri_socket", G + "cri_socket "
                                                              "'/run/containerd/containerd.sock' is not a unix:/// "
                                                              "socket URL")]),
])
def test_control_plane_rules(changes, expected):
    assert rules(changes) == expected
