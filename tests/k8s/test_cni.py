"""gpuforge.cluster.cni against the harness: Flannel and Cilium (molecule/cni covers Calico), and the
checks that stop it before anything is applied.

The role runs through ansible-playbook (cni_playbook.yml, gpuforge.runner) against the session's
harness, with the upstream files of the bundle tests/k8s/cni_bundle.sh lays out from the pinned
upstream files (the `bundle` fixture of conftest.py); what it applied is read back with the Python client. Each test removes what
it installed. Cilium's chart is also rendered with the harness's helm to show that every image it can
run moves to the mirror.
"""

import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from gpuforge import k8s_harness
from gpuforge.runner import run_playbook

from k8s_helpers import CNI_MIRROR, CNI_VERSIONS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLAYBOOK = HERE / "cni_playbook.yml"
VERSIONS, MIRROR = CNI_VERSIONS, CNI_MIRROR
HOST = "cp-01"

sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.gpuforge.cluster.plugins.filter import cni_manifests as cm  # noqa: E402


@pytest.fixture(scope="module")
def apps_v1(api):
    return client.AppsV1Api(api)


@pytest.fixture
def run_role(harness, bundle, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))

    def run(check=False, **variables):
        extravars = {"gpuforge_kubeconfig": str(harness.kubeconfig), "cni_bundle_dir": str(bundle),
                     "cni_helm_binary": harness.tool("helm"), "cni_wait_timeout": 120, **variables}
        return run_playbook(PLAYBOOK, inventory, extravars=extravars, check=check)
    return run


@pytest.fixture
def kubeadm_config(core_v1):
    """Sets ConfigMap kube-system/kubeadm-config as kubeadm init uploads it, with the given networking
    (None: no such ConfigMap); what was there before the test is put back after it."""
    name, ns = "kubeadm-config", "kube-system"
    try:
        before = core_v1.read_namespaced_config_map(name, ns).data
    except ApiException as exc:
        assert exc.status == 404
        before = None

    def put(data):
        try:
            core_v1.delete_namespaced_config_map(name, ns)
        except ApiException as exc:
            assert exc.status == 404
        if data is not None:
            core_v1.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": data})

    def upload(networking):
        put(None if networking is None else {"ClusterConfiguration": yaml.safe_dump({
            "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
            "kubernetesVersion": k8s_harness.versions()["KUBERNETES_VERSION"],
            "networking": {"dnsDomain": "cluster.local", **networking}})})
    yield upload
    put(before)


def failure(run):
    assert not run.ok, run.table()
    return " ".join(t["msg"] or "" for t in run.hosts[HOST]["failed_tasks"])


def converge_idempotent_check(run_role, installed, **variables):
    """Check mode on a cluster without the CNI reports the change and makes none (`installed()` is
    still false), the first run changes, the second changes nothing, check mode after it changes nothing."""
    fresh = run_role(check=True, **variables)
    assert fresh.ok and fresh.hosts[HOST]["changed"] >= 1, fresh.table()
    assert not installed()
    first = run_role(**variables)
    assert first.ok and first.hosts[HOST]["changed"] >= 1, first.table()
    second = run_role(**variables)
    assert second.ok and second.hosts[HOST]["changed"] == 0, second.table()
    check = run_role(check=True, **variables)
    assert check.ok and check.hosts[HOST]["changed"] == 0, check.table()


def containers(workload):
    spec = workload.spec.template.spec
    return (spec.init_containers or []) + spec.containers


def wait_gone(what, check, timeout=90):
    deadline = time.monotonic() + timeout
    while check():
        assert time.monotonic() < deadline, f"timed out waiting for {what} to go"
        time.sleep(0.5)


def namespaces(core_v1):
    return {n.metadata.name for n in core_v1.list_namespace().items}


def node_names(core_v1):
    return {n.metadata.name for n in core_v1.list_node().items}


# --- what stops the role before it applies anything -------------------------------------------

def test_a_cluster_without_a_recorded_pod_subnet_fails_naming_the_variable(run_role, kubeadm_config, core_v1):
    # The pod subnet is the cluster model's (gpuforge_pod_subnet, never empty); the CNI goes only on the subnet
    # kubeadm recorded, and a cluster kubeadm did not make (no kube-system/kubeadm-config) has none.
    kubeadm_config(None)
    msg = failure(run_role(cni_plugin="flannel"))
    assert msg.startswith(f"{HOST}: the cluster records no pod subnet"), msg
    assert "(gpuforge_pod_subnet 10.244.0.0/16)" in msg, msg
    assert "kube-flannel" not in namespaces(core_v1)


def test_a_pod_subnet_unlike_the_clusters_fails_naming_both(run_role, kubeadm_config, apps_v1):
    kubeadm_config({"podSubnet": "10.40.0.0/16", "serviceSubnet": "10.96.0.0/12"})
    msg = failure(run_role(cni_plugin="calico", gpuforge_pod_subnet="10.200.0.0/16"))
    assert msg.startswith(f"{HOST}: gpuforge_pod_subnet is 10.200.0.0/16 but the cluster's pod subnet (networking.podSubnet "
                          "in ConfigMap kube-system/kubeadm-config) is 10.40.0.0/16"), msg
    assert not apps_v1.list_namespaced_daemon_set("kube-system", field_selector="metadata.name=calico-node").items


@pytest.mark.parametrize("variables, message", [
    ({"gpuforge_kubeconfig": "/nonexistent/admin.conf"},
     "the admin kubeconfig /nonexistent/admin.conf (gpuforge_kubeconfig) is not on the controller"),
    ({"cni_image_registry": "https://mirror.example.internal"}, "cni_image_registry 'https://mirror.example.internal' "
                                                                "must be a registry host[:port]"),
    ({"cni_calico_version": "v0.0.1"}, "calico/v0.0.1/manifests/calico.yaml is not on the controller: cni_bundle_dir"),
    ({"cni_plugin": "cilium", "cni_cilium_kube_proxy_replacement": True},
     "cni_cilium_kube_proxy_replacement needs cni_cilium_k8s_service_host"),
    ({"gpuforge_pod_subnet": "10.40.0.1/16"}, "gpuforge_pod_subnet '10.40.0.1/16' is not a network in CIDR notation"),
])
def test_bad_variables(run_role, kubeadm_config, variables, message):
    kubeadm_config({"podSubnet": "10.40.0.0/16", "serviceSubnet": "10.96.0.0/12"})
    msg = failure(run_role(**{"gpuforge_pod_subnet": "10.40.0.0/16", **variables}))
    assert msg.startswith(f"{HOST}: ") and message in msg, msg


def test_a_bundle_file_that_is_not_upstreams_is_refused(run_role, kubeadm_config, bundle, tmp_path, core_v1):
    """A changed upstream file, or one the bundle's SHA256SUMS does not list, stops the role before it applies
    anything."""
    kubeadm_config({"podSubnet": "10.40.0.0/16", "serviceSubnet": "10.96.0.0/12"})
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = copy / "flannel" / VERSIONS["FLANNEL_VERSION"] / "Documentation" / "kube-flannel.yml"
    manifest.write_text(manifest.read_text() + "\n# changed by hand\n")
    variables = {"gpuforge_pod_subnet": "10.40.0.0/16", "cni_plugin": "flannel", "cni_bundle_dir": str(copy)}
    msg = failure(run_role(**variables))
    assert msg.startswith(f"{HOST}: ") and f"{manifest} does not match its SHA-256 in {copy}/SHA256SUMS" in msg, msg
    assert "it is not the upstream file" in msg
    sums = copy / "SHA256SUMS"
    sums.write_text("".join(line for line in sums.read_text().splitlines(keepends=True) if "kube-flannel" not in line))
    msg = failure(run_role(**variables))
    assert f"{sums} (cni_bundle_dir) lists no SHA-256 of ./flannel/" in msg, msg
    assert "kube-flannel" not in namespaces(core_v1)


def test_plugin_none_does_nothing(run_role):
    run = run_role(cni_plugin="none", gpuforge_kubeconfig="/nonexistent/admin.conf", cni_bundle_dir="")
    # only the argument spec checks and the cluster model run: no kubeconfig or bundle needed
    assert run.ok and run.hosts[HOST]["changed"] == 0, run.table()
    ran = {r["task"] for r in run.results if r["status"] != "skipped"}
    model = {"Derive the model from the inventory", "Stop when the inventory cannot give a model",
             "Give every host the model"}
    assert ran and all(t.startswith("Validating arguments") or t in model for t in ran), ran


# --- Flannel ----------------------------------------------------------------------------------

def test_flannel(run_role, harness, bundle, kubeadm_config, core_v1, apps_v1):
    kubeadm_config({"podSubnet": "10.48.0.0/16", "serviceSubnet": "10.96.0.0/12"})  # as kubeadm init recorded it
    mirror = "mirror.example.internal/cni"  # a mirror with a path
    try:
        converge_idempotent_check(run_role, lambda: "kube-flannel" in namespaces(core_v1), cni_plugin="flannel",
                                  gpuforge_pod_subnet="10.48.0.0/16", cni_image_registry=mirror)
        namespace = core_v1.read_namespace("kube-flannel")
        assert namespace.metadata.labels["app.kubernetes.io/managed-by"] == "gpuforge"
        cfg = core_v1.read_namespaced_config_map("kube-flannel-cfg", "kube-flannel")
        assert json.loads(cfg.data["net-conf.json"]) == {"Network": "10.48.0.0/16", "EnableNFTables": False,
                                                         "Backend": {"Type": "vxlan"}}
        assert cfg.metadata.labels["app.kubernetes.io/managed-by"] == "gpuforge"
        ds = apps_v1.read_namespaced_daemon_set("kube-flannel-ds", "kube-flannel")
        assert {c.name: c.image for c in containers(ds)} == {
            "install-cni-plugin": f"{mirror}/flannel-io/flannel-cni-plugin:v1.9.1-flannel3",
            "install-cni": f"{mirror}/flannel-io/flannel:{VERSIONS['FLANNEL_VERSION']}",
            "kube-flannel": f"{mirror}/flannel-io/flannel:{VERSIONS['FLANNEL_VERSION']}",
        }
        # the role waited for the DaemonSet: it runs on every node (the control plane too)
        assert ds.status.desired_number_scheduled == ds.status.number_ready == len(node_names(core_v1))
        pods = core_v1.list_namespaced_pod("kube-flannel", label_selector="app=flannel").items
        assert {p.spec.node_name for p in pods} == node_names(core_v1)
    finally:
        harness.kubectl("delete", "--ignore-not-found", "--wait=false", "-f",
                        str(bundle / "flannel" / VERSIONS["FLANNEL_VERSION"] / "Documentation" / "kube-flannel.yml"), check=False)
        wait_gone("namespace kube-flannel", lambda: "kube-flannel" in namespaces(core_v1))


# --- Cilium -----------------------------------------------------------------------------------

def test_cilium(run_role, harness, kubeadm_config, core_v1, apps_v1, bundle):
    kubeadm_config({"podSubnet": "10.40.0.0/16", "serviceSubnet": "10.96.0.0/12"})
    port = harness.state["ports"]["kube-apiserver"]
    variables = {"cni_plugin": "cilium", "gpuforge_pod_subnet": "10.40.0.0/16", "cni_image_registry": MIRROR,
                 "cni_cilium_kube_proxy_replacement": True,
                 "cni_cilium_k8s_service_host": "127.0.0.1", "cni_cilium_k8s_service_port": port}
    try:
        # the pod subnet is the cluster model's, as kubeadm recorded it
        converge_idempotent_check(run_role, lambda: bool(apps_v1.list_namespaced_daemon_set(
            "kube-system", field_selector="metadata.name=cilium").items), **variables)
        config = core_v1.read_namespaced_config_map("cilium-config", "kube-system").data
        assert config["ipam"] == "cluster-pool"
        assert config["cluster-pool-ipv4-cidr"] == "10.40.0.0/16"
        assert config["kube-proxy-replacement"] == "true"
        release = json.loads(subprocess.run(
            [harness.tool("helm"), "--kubeconfig", str(harness.kubeconfig), "list", "-n", "kube-system", "-o", "json"],
            capture_output=True, text=True, check=True).stdout)
        assert [(r["name"], r["chart"], r["status"]) for r in release] == [
            ("cilium", f"cilium-{VERSIONS['CILIUM_VERSION']}", "deployed")]
        agent = apps_v1.read_namespaced_daemon_set("cilium", "kube-system")
        # the packaged chart pins digests: the mirror keeps upstream's path, tag and digest
        chart = bundle / "cilium" / VERSIONS["CILIUM_VERSION"] / f"cilium-{VERSIONS['CILIUM_VERSION']}.tgz"
        with tarfile.open(chart) as packaged:
            upstream = yaml.safe_load(packaged.extractfile("cilium/values.yaml").read())
        images = {c.image for c in containers(agent)}
        assert images == {f"{MIRROR}/cilium/cilium:v{VERSIONS['CILIUM_VERSION']}@{upstream['image']['digest']}"}
        env = {e.name: e.value for c in agent.spec.template.spec.containers for e in c.env or []}
        assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", str(port))
        assert agent.status.desired_number_scheduled == agent.status.number_ready == len(node_names(core_v1))
        operator = apps_v1.read_namespaced_deployment("cilium-operator", "kube-system")
        assert [c.image for c in containers(operator)] == [
            f"{MIRROR}/cilium/operator-generic:v{VERSIONS['CILIUM_VERSION']}@{upstream['operator']['image']['genericDigest']}"]

        # a value of the site's (cni_cilium_values) upgrades the release
        run = run_role(**variables, cni_cilium_values={"operator": {"replicas": 1}})
        assert run.ok and run.hosts[HOST]["changed"] == 1, run.table()
        assert apps_v1.read_namespaced_deployment("cilium-operator", "kube-system").spec.replicas == 1
    finally:
        subprocess.run([harness.tool("helm"), "--kubeconfig", str(harness.kubeconfig), "uninstall", "cilium", "-n",
                        "kube-system", "--ignore-not-found"], capture_output=True, text=True, check=False)


def rendered_images(k8s_bin, chart, values, *flags):
    """(kind/name/container, image) of every workload `helm template` renders."""
    proc = subprocess.run([str(k8s_bin / "helm"), "template", "cilium", str(chart), "-n", "kube-system",
                           "--kube-version", k8s_harness.versions()["KUBERNETES_VERSION"], "-f", "-", *flags],
                          input=json.dumps(values), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = []
    for doc in yaml.safe_load_all(proc.stdout):
        if not doc or doc["kind"] not in cm.POD_SPEC_PATHS:
            continue
        spec = doc
        for key in cm.POD_SPEC_PATHS[doc["kind"]]:
            spec = spec[key]
        out += [(f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}", c["image"])
                for field in cm.CONTAINER_LISTS for c in spec.get(field) or []]
    return sorted(out)


@pytest.mark.parametrize("flags", [
    # everything optional that runs an image of its own
    ["--set", "hubble.relay.enabled=true", "--set", "hubble.ui.enabled=true", "--set", "clustermesh.useAPIServer=true",
     "--set", "nodeinit.enabled=true", "--set", "authentication.mutual.spire.enabled=true",
     "--set", "hubble.tls.auto.method=cronJob"],
    ["--set", "preflight.enabled=true", "--set", "agent=false", "--set", "operator.enabled=false"],
], ids=["all-components", "preflight"])
def test_every_cilium_image_the_chart_renders_is_on_the_mirror(k8s_bin, bundle, flags):
    chart = bundle / "cilium" / VERSIONS["CILIUM_VERSION"] / f"cilium-{VERSIONS['CILIUM_VERSION']}.tgz"
    with tarfile.open(chart) as packaged:
        overrides = cm.cni_helm_image_values(yaml.safe_load(packaged.extractfile("cilium/values.yaml").read()), MIRROR)
    upstream = rendered_images(k8s_bin, chart, {}, *flags)
    mirrored = rendered_images(k8s_bin, chart, overrides, *flags)
    assert len(upstream) >= 3 and [w for w, _ in mirrored] == [w for w, _ in upstream]
    for (where, old), (_, new) in zip(upstream, mirrored):
        host, _, path = old.partition("/")
        assert "." in host and new == f"{MIRROR}/{path}", (where, old, new)
