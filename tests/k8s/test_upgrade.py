"""gpuforge.cluster.kubernetes_upgrade and playbooks/upgrade.yml against the harness: the refusals
(before any node is touched), the drain and uncordon steps for real on a kwok node running pods, and
a failure after the drain (the node stays cordoned, the rollout stops) followed by the re-run that
gives the node back. The Molecule scenario covers the upgrade to the running version (nothing
changes).

The hosts are this machine (connection local); the API calls run with the harness's kubectl and
admin kubeconfig. What only real hosts do (packages, kubeadm upgrade, kubelet restart) must never run
here: a worker is only ever "behind" with a kubernetes_node variable its argument spec rejects, so
the package step fails before its first task, and every other run first checks that each node of
the inventory reports the target."""

import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from gpuforge import k8s_harness

from k8s_helpers import ansible_playbook as ansible, recap, wait_for

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
UPGRADE = ROOT / "playbooks" / "upgrade.yml"
STEPS = HERE / "playbooks" / "upgrade_steps.yml"
VERSION = k8s_harness.versions()["KUBERNETES_VERSION"].lstrip("v")  # the harness's: 1.37.2
MAJOR, MINOR = (int(x) for x in VERSION.split(".")[:2])
WORKERS = ("upg-wk-01", "upg-wk-02", "upg-wk-03")
ANNOTATION = "gpuforge.io/cordoned-by"  # set by gpuforge.cluster.kubernetes_drain
REASON = f"upgrade v{VERSION}"



def set_kubelet(core_v1, name, version):
    """What a kubelet reports in its Node's status (kwok keeps what is there)."""
    core_v1.patch_node_status(name, {"status": {"nodeInfo": {"kubeletVersion": f"v{version}",
                                                             "kubeProxyVersion": f"v{version}"}}})


def kubelet(core_v1, name):
    return core_v1.read_node(name).status.node_info.kubelet_version


def reset_node(core_v1, name):
    core_v1.patch_node(name, {"spec": {"unschedulable": None}, "metadata": {"annotations": {ANNOTATION: None}}})
    set_kubelet(core_v1, name, VERSION)


def node_view(core_v1, name):
    node = core_v1.read_node(name)
    return {"unschedulable": bool(node.spec.unschedulable),
            "annotation": (node.metadata.annotations or {}).get(ANNOTATION),
            "kubelet": node.status.node_info.kubelet_version}


@pytest.fixture(scope="module")
def upgrade_nodes(harness, core_v1):
    """Three kwok workers of this module's own (the session's nodes stay as other tests expect them)."""
    for name in WORKERS:
        body = k8s_harness.node_object(k8s_harness.NodeSpec(name=name), f"v{VERSION}")
        status = body.pop("status")
        core_v1.create_node(body)
        core_v1.patch_node_status(name, {"status": status})
    for name in WORKERS:
        wait_for(f"{name} Ready", lambda n=name: any(
            c.type == "Ready" and c.status == "True" for c in core_v1.read_node(n).status.conditions or []))
    yield WORKERS
    for name in WORKERS:
        try:
            core_v1.delete_node(name)
        except ApiException as exc:  # pragma: no cover - already gone
            assert exc.status == 404


@pytest.fixture
def nodes(upgrade_nodes, core_v1):
    """Every node of the inventory schedulable, without the annotation, its kubelet at the harness's
    version (kwok may have written its own when it saw the node before its status), before and after."""
    for name in ("cp-01", *upgrade_nodes):
        reset_node(core_v1, name)
    yield upgrade_nodes
    for name in ("cp-01", *upgrade_nodes):
        reset_node(core_v1, name)



def inventory(tmp_path, harness, **cluster):
    data = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "gpuforge_kubernetes_version": VERSION, "gpuforge_kubeconfig": str(harness.kubeconfig),
                 "kubernetes_drain_timeout": 60, **cluster},
        "children": {"k8s_cluster": {"children": {
            "control_plane": {"hosts": {"cp-01": {"gpuforge_kubeadm_dir": str(harness.workdir)}}},
            "workers": {"hosts": {name: {} for name in WORKERS}}}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path




def flat(output):
    """The output with YAML's line folding undone, for messages."""
    return " ".join(output.split())


def guard(core_v1):
    """This machine is every host: no node of the inventory may be behind the target (see the docstring)."""
    behind = {n: kubelet(core_v1, n) for n in ("cp-01", *WORKERS) if kubelet(core_v1, n) != f"v{VERSION}"}
    assert not behind, f"nodes behind the target, the upgrade would install packages here: {behind}"


def untouched(core_v1):
    for name in ("cp-01", *WORKERS):
        assert node_view(core_v1, name) == {"unschedulable": False, "annotation": None, "kubelet": f"v{VERSION}"}, name


def deployment(core_v1, apps_v1, namespace, node, replicas=2):
    """Pods on `node` (a Deployment: an eviction makes replacements, which stay Pending while it is cordoned)."""
    apps_v1.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                       "terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "web", "image": "localhost/gpuforge/never-pulled:1"}],
                                       "volumes": [{"name": "scratch", "emptyDir": {}}]}}}})
    return wait_for("the pods Running", lambda: (lambda pods: pods if len(pods) == replicas and all(
        p.status.phase == "Running" for p in pods) else None)(pods_of(core_v1, namespace)))


def pods_of(core_v1, namespace):
    return [p for p in core_v1.list_namespaced_pod(namespace, label_selector="app=web").items
            if not p.metadata.deletion_timestamp]


@pytest.fixture(scope="module")
def apps_v1(api):
    return client.AppsV1Api(api)


# --- refusals: before any node is touched ----------------------------------------------------------

NEXT, SKIP = f"{MAJOR}.{MINOR + 1}.0", f"{MAJOR}.{MINOR + 2}.0"  # the next minor; one minor too far
OLDER, MAJOR_UP = f"{MAJOR}.{MINOR - 1}.5", f"{MAJOR + 1}.0.0"
REFUSALS = {
    "skipped minor": ({"gpuforge_kubernetes_version": SKIP},
                      [f"cp-01: refusing to upgrade the cluster from {VERSION} to {SKIP} "
                       f"(gpuforge_kubernetes_version): {VERSION} to {SKIP} skips {MAJOR}.{MINOR + 1}",
                       f"one minor at a time ({MAJOR}.{MINOR + 1}.x then {MAJOR}.{MINOR + 2}.x)"]),
    "downgrade": ({"gpuforge_kubernetes_version": OLDER},
                  [f"refusing to upgrade the cluster from {VERSION} to {OLDER} (gpuforge_kubernetes_version)",
                   f"{OLDER} is older than the running {VERSION}: kubeadm does not downgrade"]),
    "major": ({"gpuforge_kubernetes_version": MAJOR_UP},
              [f"the major version changes ({MAJOR} to {MAJOR + 1})"]),
    "packages other than the target": (
        # hosts whose override kubernetes_node_version keeps the old release
        {"gpuforge_kubernetes_version": NEXT, "kubernetes_node_version": VERSION},
        [f"refusing to upgrade to {NEXT} (gpuforge_kubernetes_version): kubernetes_node_version "
         f"is not the target on cp-01 ({VERSION}), upg-wk-01 ({VERSION})",
         f"remove the override kubernetes_node_version there (the cluster's release applies) or set it to {NEXT}"]),
    "batch size": ({"gpuforge_upgrade_worker_batch": "0"},
                   ["gpuforge_upgrade_worker_batch 0 must be a number of workers (1 or more) or a percentage"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_before_any_node_is_touched(harness, k8s_bin, core_v1, nodes, tmp_path, case):
    variables, messages = REFUSALS[case]
    proc = ansible(inventory(tmp_path, harness, **variables), k8s_bin, UPGRADE)
    assert proc.returncode != 0
    out = flat(proc.stdout)
    for message in messages:
        assert message in out, proc.stdout[-4000:]
    # the cluster model refuses what its rules refuse (the batch size) before the upgrade's own check
    assert "No node was touched." in out or "Nothing was changed." in out
    # only the check ran: no worker was in any play, no node was cordoned or annotated
    assert set(recap(proc.stdout)) == {"cp-01"} and recap(proc.stdout)["cp-01"]["changed"] == 0
    untouched(core_v1)


def test_a_kubelet_newer_than_the_target_is_refused(harness, k8s_bin, core_v1, nodes, tmp_path):
    set_kubelet(core_v1, "upg-wk-02", NEXT)
    proc = ansible(inventory(tmp_path, harness), k8s_bin, UPGRADE)
    assert proc.returncode != 0
    assert (f"refusing to upgrade to {VERSION} (gpuforge_kubernetes_version): the kubelet of upg-wk-02 is "
            f"{NEXT}, newer than the target") in flat(proc.stdout)
    assert set(recap(proc.stdout)) == {"cp-01"}
    assert node_view(core_v1, "upg-wk-02")["unschedulable"] is False


def test_a_host_without_a_node_is_refused(harness, k8s_bin, core_v1, nodes, tmp_path):
    path = inventory(tmp_path, harness)
    data = yaml.safe_load(path.read_text())
    data["all"]["children"]["k8s_cluster"]["children"]["workers"]["hosts"]["upg-wk-09"] = {}
    path.write_text(yaml.safe_dump(data))
    proc = ansible(path, k8s_bin, UPGRADE)
    assert proc.returncode != 0
    assert f"refusing to upgrade to {VERSION}: no node in the cluster for upg-wk-09" in flat(proc.stdout)
    untouched(core_v1)


# --- the drain and uncordon steps, for real ---------------------------------------------------------

def test_drain_evicts_and_uncordon_gives_back(harness, k8s_bin, core_v1, apps_v1, nodes, namespace, tmp_path):
    before = {p.metadata.uid for p in deployment(core_v1, apps_v1, namespace, "upg-wk-01")}
    path = inventory(tmp_path, harness)
    limit = ("--limit", "cp-01,upg-wk-01")

    # check mode: the API server's dry runs, nothing made
    proc = ansible(path, k8s_bin, STEPS, *limit, "-e", "gpuforge_test_step=drain", "--check")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc.stdout)["upg-wk-01"]["changed"] == 1  # the cordon and annotation (one patch): a dry run
    assert node_view(core_v1, "upg-wk-01")["unschedulable"] is False
    assert {p.metadata.uid for p in pods_of(core_v1, namespace)} == before

    proc = ansible(path, k8s_bin, STEPS, *limit, "-e", "gpuforge_test_step=drain")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc.stdout)["upg-wk-01"]["changed"] == 2  # the cordon and annotation, the evictions
    assert node_view(core_v1, "upg-wk-01") == {"unschedulable": True, "annotation": REASON, "kubelet": f"v{VERSION}"}
    # the pods were evicted; their replacements wait, the node being cordoned
    after = wait_for("the replacements", lambda: (lambda pods: pods if len(pods) == 2 and not {
        p.metadata.uid for p in pods} & before else None)(pods_of(core_v1, namespace)))
    assert {p.status.phase for p in after} == {"Pending"} and {p.spec.node_name for p in after} == {None}

    # drained already: nothing to do
    proc = ansible(path, k8s_bin, STEPS, *limit, "-e", "gpuforge_test_step=drain")
    assert proc.returncode == 0 and recap(proc.stdout)["upg-wk-01"]["changed"] == 0, proc.stdout[-4000:]

    proc = ansible(path, k8s_bin, STEPS, *limit, "-e", "gpuforge_test_step=uncordon")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc.stdout)["upg-wk-01"]["changed"] == 1  # uncordoned and the annotation removed (one patch)
    assert node_view(core_v1, "upg-wk-01") == {"unschedulable": False, "annotation": None, "kubelet": f"v{VERSION}"}
    running = wait_for("the replacements Running", lambda: (lambda pods: pods if len(pods) == 2 and all(
        p.status.phase == "Running" for p in pods) else None)(pods_of(core_v1, namespace)))
    assert {p.spec.node_name for p in running} == {"upg-wk-01"}


def test_uncordon_leaves_a_node_someone_else_cordoned(harness, k8s_bin, core_v1, nodes, tmp_path):
    core_v1.patch_node("upg-wk-02", {"spec": {"unschedulable": True}})
    path = inventory(tmp_path, harness)
    for step in ("drain", "uncordon"):
        proc = ansible(path, k8s_bin, STEPS, "--limit", "cp-01,upg-wk-02", "-e", f"gpuforge_test_step={step}")
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert recap(proc.stdout)["upg-wk-02"]["changed"] == 0
    assert node_view(core_v1, "upg-wk-02")["unschedulable"] is True
    assert node_view(core_v1, "upg-wk-02")["annotation"] is None
    assert "node upg-wk-02 was cordoned by someone else" in flat(proc.stdout)


def test_wait_says_what_the_node_reports(harness, k8s_bin, core_v1, nodes, tmp_path):
    path = inventory(tmp_path, harness, kubernetes_upgrade_node_ready_timeout=4)
    limit = ("--limit", "cp-01,upg-wk-02")
    proc = ansible(path, k8s_bin, STEPS, *limit, "-e", "gpuforge_test_step=wait")
    assert proc.returncode == 0, proc.stdout[-4000:]
    set_kubelet(core_v1, "upg-wk-02", OLDER)  # as if the restarted kubelet were still the old one
    proc = ansible(path, k8s_bin, STEPS, *limit, "-e", "gpuforge_test_step=wait")
    assert proc.returncode != 0
    assert (f"upg-wk-02: node upg-wk-02 reports kubelet v{OLDER} 4 s (kubernetes_upgrade_node_ready_timeout) after the "
            f"kubelet restart, not v{VERSION}. Look at the kubelet on upg-wk-02") in flat(proc.stdout)


# --- a failure after the drain, and the re-run ------------------------------------------------------

def test_a_failed_node_stays_cordoned_and_a_rerun_gives_it_back(harness, k8s_bin, core_v1, apps_v1, nodes, namespace,
                                                                 tmp_path):
    before = {p.metadata.uid for p in deployment(core_v1, apps_v1, namespace, "upg-wk-01")}
    core_v1.patch_node("upg-wk-03", {"spec": {"unschedulable": True}})  # an operator's cordon
    # upg-wk-01 is a minor behind; its package step fails at the kubernetes_node argument spec,
    # before any of its tasks (nothing is installed here). Batches of two: upg-wk-01 and upg-wk-02,
    # then upg-wk-03, which must not start.
    set_kubelet(core_v1, "upg-wk-01", f"{MAJOR}.{MINOR - 1}.9")
    failing = inventory(tmp_path, harness, gpuforge_upgrade_worker_batch=2,
                        kubernetes_node_install_method="not-a-method", kubernetes_node_hold_packages="not-a-bool")
    proc = ansible(failing, k8s_bin, UPGRADE)
    assert proc.returncode != 0
    out = flat(proc.stdout)
    assert (f"upg-wk-01: the upgrade of node upg-wk-01 to v{VERSION} failed at \"Validating arguments against arg spec "
            "'main'") in out
    assert "value of kubernetes_node_install_method must be one of: repo, binaries, none, got: not-a-method" in out
    assert "The node stays cordoned (drained)" in out and "`kubectl uncordon upg-wk-01`" in out
    assert ("upg-wk-03: not upgrading node upg-wk-03: upg-wk-01 failed or could not be reached in this run; "
            "the rollout stops there") in out
    counts = recap(proc.stdout)
    assert counts["upg-wk-01"]["failed"] == 1 and counts["upg-wk-01"]["rescued"] == 1
    assert counts["upg-wk-02"]["failed"] == 0 and counts["upg-wk-02"]["changed"] == 0
    assert counts["upg-wk-03"]["failed"] == 1 and counts["upg-wk-03"]["changed"] == 0
    assert node_view(core_v1, "upg-wk-01")["unschedulable"] is True
    assert node_view(core_v1, "upg-wk-01")["annotation"] == REASON
    assert not {p.metadata.uid for p in pods_of(core_v1, namespace)} & before  # drained
    assert node_view(core_v1, "upg-wk-02")["unschedulable"] is False
    assert node_view(core_v1, "upg-wk-03") == {"unschedulable": True, "annotation": None, "kubelet": f"v{VERSION}"}

    # the cause fixed (the node's kubelet reports the target), a re-run gives it back and nothing else
    set_kubelet(core_v1, "upg-wk-01", VERSION)
    guard(core_v1)
    path = inventory(tmp_path, harness, gpuforge_upgrade_worker_batch="50%")
    proc = ansible(path, k8s_bin, UPGRADE)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert {h: c["changed"] for h, c in recap(proc.stdout).items()} == {
        "cp-01": 0, "upg-wk-01": 1, "upg-wk-02": 0, "upg-wk-03": 0}
    assert node_view(core_v1, "upg-wk-01") == {"unschedulable": False, "annotation": None, "kubelet": f"v{VERSION}"}
    assert node_view(core_v1, "upg-wk-03")["unschedulable"] is True  # not ours to give back
    wait_for("the workload back on upg-wk-01", lambda: (lambda pods: len(pods) == 2 and all(
        p.status.phase == "Running" and p.spec.node_name == "upg-wk-01" for p in pods))(pods_of(core_v1, namespace)))

    # and once more: nothing drained, nothing changed
    guard(core_v1)
    proc = ansible(path, k8s_bin, UPGRADE)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert all(c["changed"] == 0 for c in recap(proc.stdout).values()), recap(proc.stdout)
    assert "every node of this run reports the target; nothing to do" in flat(proc.stdout)
