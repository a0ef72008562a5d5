"""The CNI filters (plugins/filter/cni_manifests.py) on the real upstream files: Calico's
manifests/calico.yaml (and its calico-vxlan.yaml, rebuilt from upstream's recorded difference),
Flannel's kube-flannel.yml and the values of Cilium's packaged chart, from the bundle
tests/k8s/cni_bundle.sh lays out from the pinned upstream files (shared/charts/cni; the `bundle`
fixture of conftest.py). No harness, no network: only the files.
tests/unit/test_filter_cni_manifests.py has the checks that need no upstream file."""

import copy
import hashlib
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from k8s_helpers import CNI_MIRROR, CNI_VERSIONS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRIPT = HERE / "cni_bundle.sh"
VERSIONS, MIRROR = CNI_VERSIONS, CNI_MIRROR
SUBNET = "10.32.0.0/16"

sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.gpuforge.cluster.plugins.filter import cni_manifests as cm  # noqa: E402


def load(path):
    return list(yaml.safe_load_all(path.read_text()))


@pytest.fixture(scope="session")
def calico(bundle):
    return load(bundle / "calico" / VERSIONS["CALICO_VERSION"] / "manifests" / "calico.yaml")


@pytest.fixture(scope="session")
def flannel(bundle):
    return load(bundle / "flannel" / VERSIONS["FLANNEL_VERSION"] / "Documentation" / "kube-flannel.yml")


@pytest.fixture(scope="session")
def cilium_values(bundle):
    version = VERSIONS["CILIUM_VERSION"]
    with tarfile.open(bundle / "cilium" / version / f"cilium-{version}.tgz") as chart:
        return yaml.safe_load(chart.extractfile("cilium/values.yaml").read())


def apply_unified_diff(text, diff):
    """`text` with the hunks of a unified diff applied; every context and removed line must match."""
    lines = text.splitlines(keepends=True)
    out, pos = [], 0
    hunks = re.split(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@.*\n", diff, flags=re.M)
    for start, body in zip(hunks[1::2], hunks[2::2]):
        start = int(start) - 1
        out += lines[pos:start]
        pos = start
        for line in body.splitlines(keepends=True):
            tag, rest = line[0], line[1:]
            if tag in " -":
                assert lines[pos] == rest, f"the diff does not apply at line {pos + 1}: {lines[pos]!r} != {rest!r}"
                pos += 1
            if tag in " +":
                out.append(rest)
    return "".join(out + lines[pos:])


@pytest.fixture(scope="session")
def calico_vxlan(bundle):
    """Upstream's own VXLAN variant, manifests/calico-vxlan.yaml of the same release: calico.yaml with
    upstream's recorded difference (fixtures/calico-<version>-vxlan.diff) applied."""
    version = VERSIONS["CALICO_VERSION"]
    diff = (HERE / "fixtures" / f"calico-{version}-vxlan.diff").read_text()
    manifest = (bundle / "calico" / version / "manifests" / "calico.yaml").read_text()
    vxlan = apply_unified_diff(manifest, diff[diff.index("--- a/"):])
    # byte for byte upstream's file: its git blob id, recorded in the diff's header
    data = vxlan.encode()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert f"git blob {blob}" in diff, f"rebuilt calico-vxlan.yaml is not upstream's (blob {blob})"
    return list(yaml.safe_load_all(vxlan))


def find(docs, kind, name):
    return next(d for d in docs if d and d["kind"] == kind and d["metadata"]["name"] == name)


def calico_node(docs):
    spec = find(docs, "DaemonSet", "calico-node")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "calico-node")


def env(container):
    return {e["name"]: e.get("value") for e in container["env"]}


def images(docs):
    """(kind/name/container, image) of every container of the workloads."""
    return cm.workload_images(docs)


def test_a_warm_bundle_run_does_nothing(bundle):
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == f"cni_bundle.sh: {bundle} is up to date"


# --- Calico -----------------------------------------------------------------------------------

def test_upstream_calico_leaves_the_pool_cidr_commented_out(calico):
    assert "CALICO_IPV4POOL_CIDR" not in env(calico_node(calico))
    assert len([d for d in calico if d]) == 31


def test_calico_pool_cidr_and_ipip_by_default(calico):
    before = copy.deepcopy(calico)
    docs = cm.cni_calico_manifest(calico, SUBNET)
    assert calico == before  # the input is not changed
    node = env(calico_node(docs))
    assert node["CALICO_IPV4POOL_CIDR"] == SUBNET
    assert (node["CALICO_IPV4POOL_IPIP"], node["CALICO_IPV4POOL_VXLAN"]) == ("Always", "Never")
    config = find(docs, "ConfigMap", "calico-config")["data"]
    assert (config["calico_backend"], config["veth_mtu"]) == ("bird", "0")
    assert "-bird-ready" in calico_node(docs)["readinessProbe"]["exec"]["command"]
    # same objects, in the same order, each labelled
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        (d["kind"], d["metadata"]["name"]) for d in calico if d]
    assert {d["metadata"]["labels"]["app.kubernetes.io/managed-by"] for d in docs} == {"gpuforge"}
    # the CIDR is set once, nothing else in the container changed
    names = [e["name"] for e in calico_node(docs)["env"]]
    assert names.count("CALICO_IPV4POOL_CIDR") == 1 and len(names) == len(calico_node(calico)["env"]) + 1
    assert images(docs) == images(calico)


def test_calico_vxlan_cross_subnet_is_upstreams_calico_vxlan(calico, calico_vxlan):
    docs = cm.cni_calico_manifest(calico, "10.200.0.0/14", "VXLANCrossSubnet")
    assert env(calico_node(docs))["CALICO_IPV4POOL_CIDR"] == "10.200.0.0/14"
    for doc in docs:  # take off what upstream's file does not have
        del doc["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        if not doc["metadata"]["labels"]:
            del doc["metadata"]["labels"]
    calico_node(docs)["env"] = [e for e in calico_node(docs)["env"] if e["name"] != "CALICO_IPV4POOL_CIDR"]
    assert docs == [d for d in calico_vxlan if d]


@pytest.mark.parametrize("encapsulation, ipip, vxlan, backend", [
    ("IPIPCrossSubnet", "CrossSubnet", "Never", "bird"),
    ("VXLAN", "Never", "Always", "vxlan"),
    ("None", "Never", "Never", "bird"),
])
def test_calico_encapsulations(calico, encapsulation, ipip, vxlan, backend):
    docs = cm.cni_calico_manifest(calico, SUBNET, encapsulation, 1450)
    node = calico_node(docs)
    assert (env(node)["CALICO_IPV4POOL_IPIP"], env(node)["CALICO_IPV4POOL_VXLAN"]) == (ipip, vxlan)
    config = find(docs, "ConfigMap", "calico-config")["data"]
    assert (config["calico_backend"], config["veth_mtu"]) == (backend, "1450")
    assert ("-bird-live" in node["livenessProbe"]["exec"]["command"]) == (backend == "bird")


def test_calico_subnet_is_normalized_only_when_valid(calico):
    docs = cm.cni_calico_manifest(calico, " 10.32.0.0/16 ")
    assert env(calico_node(docs))["CALICO_IPV4POOL_CIDR"] == SUBNET


@pytest.mark.parametrize("args, message", [
    (("10.32.0.1/16",), "'10.32.0.1/16' is not a valid network .*has host bits set"),
    (("fd00::/48",), "is not an IPv4 network"),
    (("10.32.0.0",), "is not a network in CIDR notation"),
    (("10.32.0.0/28",), "is a /28: the pod network must be between a /8 and a /24"),
    ((SUBNET, "GRE"), "encapsulation 'GRE' is not one of IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None"),
    ((SUBNET, "IPIP", 100), "mtu 100 is not 0 .auto-detect. nor between 576 and 9000"),
    ((SUBNET, "IPIP", "big"), "mtu 'big' is not a number"),
])
def test_calico_bad_arguments(calico, args, message):
    with pytest.raises(AnsibleFilterError, match="^cni_calico_manifest: (pod_subnet .*)?" + message):
        cm.cni_calico_manifest(calico, *args)


def test_calico_filter_on_flannels_manifest(flannel):
    with pytest.raises(AnsibleFilterError, match=r"the manifest has no DaemonSet calico-node \(is it Calico's "
                                                 r"manifests/calico.yaml\?\)"):
        cm.cni_calico_manifest(flannel, SUBNET)


def test_calico_without_its_container(calico):
    docs = copy.deepcopy(calico)
    find(docs, "DaemonSet", "calico-node")["spec"]["template"]["spec"]["containers"][0]["name"] = "renamed"
    with pytest.raises(AnsibleFilterError, match="the DaemonSet calico-node has no container calico-node"):
        cm.cni_calico_manifest(docs, SUBNET)


# --- Flannel ----------------------------------------------------------------------------------

def net_conf(docs):
    return json.loads(find(docs, "ConfigMap", "kube-flannel-cfg")["data"]["net-conf.json"])


def test_flannel_network(flannel):
    assert net_conf(flannel)["Network"] == "10.244.0.0/16"  # upstream's
    docs = cm.cni_flannel_manifest(flannel, SUBNET)
    assert net_conf(docs) == {**net_conf(flannel), "Network": SUBNET}
    assert net_conf(docs)["Backend"] == {"Type": "vxlan"} and net_conf(docs)["EnableNFTables"] is False
    assert len(docs) == 6 and images(docs) == images(flannel)
    namespace = find(docs, "Namespace", "kube-flannel")
    # upstream's labels kept, ours added
    assert namespace["metadata"]["labels"] == {**find(flannel, "Namespace", "kube-flannel")["metadata"]["labels"],
                                               "app.kubernetes.io/managed-by": "gpuforge"}


def test_flannel_backend(flannel):
    assert net_conf(cm.cni_flannel_manifest(flannel, SUBNET, "host-gw"))["Backend"] == {"Type": "host-gw"}


def test_flannel_keeps_backend_options_of_the_same_type(flannel):
    docs = copy.deepcopy(flannel)
    config = find(docs, "ConfigMap", "kube-flannel-cfg")
    config["data"]["net-conf.json"] = json.dumps({"Network": "10.1.0.0/16", "Backend": {"Type": "vxlan", "VNI": 4096}})
    assert net_conf(cm.cni_flannel_manifest(docs, SUBNET))["Backend"] == {"Type": "vxlan", "VNI": 4096}


@pytest.mark.parametrize("change, args, message", [
    (None, (SUBNET, "udp"), "backend 'udp' is not one of vxlan, host-gw, wireguard"),
    (None, ("300.1.0.0/16",), "'300.1.0.0/16' is not a valid network"),
    (lambda c: c["data"].update({"net-conf.json": "{Network:"}), (SUBNET,),
     "net-conf.json of the ConfigMap kube-flannel-cfg is not JSON"),
    (lambda c: c["data"].update({"net-conf.json": "[]"}), (SUBNET,),
     "net-conf.json of the ConfigMap kube-flannel-cfg is not a JSON object"),
    (lambda c: c["data"].pop("net-conf.json"), (SUBNET,), "the ConfigMap kube-flannel-cfg has no net-conf.json"),
    (lambda c: c["metadata"].update(name="other"), (SUBNET,), "the manifest has no ConfigMap kube-flannel-cfg"),
])
def test_flannel_bad_input(flannel, change, args, message):
    docs = copy.deepcopy(flannel)
    if change:
        change(find(docs, "ConfigMap", "kube-flannel-cfg"))
    with pytest.raises(AnsibleFilterError, match="^cni_flannel_manifest: (pod_subnet )?" + message):
        cm.cni_flannel_manifest(docs, *args)


def test_flannel_filter_on_calicos_manifest(calico):
    with pytest.raises(AnsibleFilterError, match="the manifest has no DaemonSet kube-flannel-ds"):
        cm.cni_flannel_manifest(calico, SUBNET)


# --- images -----------------------------------------------------------------------------------

def strip_host(image):
    first, _, rest = image.partition("/")
    return rest if "." in first or ":" in first else image


@pytest.mark.parametrize("registry", [MIRROR, "mirror.example.internal/cni/upstream", "localhost:5000"])
def test_every_image_moves_to_the_mirror_keeping_path_and_tag(calico, flannel, registry):
    for docs in (cm.cni_calico_manifest(calico, SUBNET), cm.cni_flannel_manifest(flannel, SUBNET)):
        moved = cm.cni_image_registry(docs, registry)
        before, after = images(docs), images(moved)
        assert len(after) == len(before) > 0
        for (where, old), (where2, new) in zip(before, after):
            assert where == where2
            assert new == f"{registry}/{strip_host(old)}" and new.startswith(registry + "/")
            assert re.search(r":v[0-9][\w.-]*$", new)  # the tag is kept


def test_calico_images_on_the_mirror(calico):
    moved = dict(images(cm.cni_image_registry(calico, MIRROR)))
    tag = VERSIONS["CALICO_VERSION"]
    assert moved == {
        "DaemonSet/calico-node/upgrade-ipam": f"{MIRROR}/calico/cni:{tag}",
        "DaemonSet/calico-node/install-cni": f"{MIRROR}/calico/cni:{tag}",
        "DaemonSet/calico-node/mount-bpffs": f"{MIRROR}/calico/node:{tag}",
        "DaemonSet/calico-node/calico-node": f"{MIRROR}/calico/node:{tag}",
        "Deployment/calico-kube-controllers/calico-kube-controllers": f"{MIRROR}/calico/kube-controllers:{tag}",
    }


def test_no_registry_leaves_the_images(calico):
    assert cm.cni_image_registry(calico, "") == [d for d in calico if d]


@pytest.mark.parametrize("registry", ["https://mirror.example.internal", "mirror.example.internal/", "mirror:port",
                                      "mirror.example.internal/UPPER", "two words"])
def test_bad_registry(calico, registry):
    with pytest.raises(AnsibleFilterError, match="^cni_image_registry: registry .* is not a registry host"):
        cm.cni_image_registry(calico, registry)


# --- Helm values (Cilium) ---------------------------------------------------------------------

def repositories(values, where=""):
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            here = f"{where}.{key}" if where else key
            if isinstance(value.get("repository"), str) and ("tag" in value or "digest" in value):
                out[here] = value["repository"]
            else:
                out.update(repositories(value, here))
    return out


def merge(base, override):
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def test_cilium_values_move_every_image(cilium_values):
    upstream = repositories(cilium_values)
    assert {"image", "operator.image", "envoy.image", "hubble.relay.image", "hubble.ui.frontend.image",
            "certgen.image", "clustermesh.apiserver.image"} <= set(upstream)
    overrides = cm.cni_helm_image_values(cilium_values, MIRROR)
    assert overrides["image"] == {"repository": f"{MIRROR}/cilium/cilium"}
    assert overrides["operator"]["image"] == {"repository": f"{MIRROR}/cilium/operator"}
    moved = repositories(merge(cilium_values, overrides))
    assert set(moved) == set(upstream)
    for key, repository in moved.items():
        assert repository == f"{MIRROR}/{strip_host(upstream[key])}", key
    # only repositories: tags, digests and everything else stay the chart's
    def leaves(tree):
        return [k for k, v in tree.items() for k in (leaves(v) if isinstance(v, dict) else [k])]
    assert set(leaves(overrides)) == {"repository"} and len(leaves(overrides)) == len(upstream)


def test_cilium_values_without_registry(cilium_values):
    assert cm.cni_helm_image_values(cilium_values, "") == {}

