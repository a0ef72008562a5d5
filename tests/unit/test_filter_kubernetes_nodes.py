"""Unit tests for gpuforge.cluster.k8s_node_patch and k8s_drain_blockers (plugins/filter/kubernetes_nodes.py)."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter import kubernetes_nodes as kn

MANAGED_L, MANAGED_T = kn.LABELS_ANNOTATION, kn.TAINTS_ANNOTATION


def node(labels=None, annotations=None, taints=None):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "gpu-01", "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"taints": taints} if taints is not None else {}, "status": {"conditions": []}}


def test_first_run_sets_labels_taints_and_the_record():
    plan = kn.k8s_node_patch(node(labels={"kubernetes.io/hostname": "gpu-01"}),
                             {"nvidia.com/gpu.present": "true", "team": "vision"},
                             [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}])
    assert plan["in_sync"] is False
    assert plan["patch"] == {
        "metadata": {"labels": {"nvidia.com/gpu.present": "true", "team": "vision"},
                     "annotations": {MANAGED_L: "nvidia.com/gpu.present,team", MANAGED_T: "nvidia.com/gpu:NoSchedule"}},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
    }


def test_in_sync_when_the_node_carries_it_all():
    current = node(labels={"kubernetes.io/hostname": "gpu-01", "team": "vision"},
                   annotations={MANAGED_L: "team", MANAGED_T: "dedicated:NoSchedule"},
                   taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                           {"key": "dedicated", "value": "ml", "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}])
    plan = kn.k8s_node_patch(current, {"team": "vision"}, [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}])
    assert plan["in_sync"] is True
    assert "spec" not in plan["patch"]


def test_removed_keys_go_and_foreign_ones_stay():
    current = node(labels={"team": "vision", "old": "x", "user-set": "y"},
                   annotations={MANAGED_L: "old,team", MANAGED_T: "gone:NoExecute"},
                   taints=[{"key": "gone", "value": "1", "effect": "NoExecute"},
                           {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    plan = kn.k8s_node_patch(current, {"team": "vision"}, [])
    assert plan["in_sync"] is False
    assert plan["removed_labels"] == ["old"] and plan["removed_taints"] == ["gone:NoExecute"]
    assert plan["patch"]["metadata"]["labels"] == {"team": "vision", "old": None}  # user-set is not ours: kept
    assert plan["patch"]["spec"]["taints"] == [
        {"key": "node.kubernetes.io/unschedulable", "value": "", "effect": "NoSchedule"}]
    assert plan["patch"]["metadata"]["annotations"] == {MANAGED_L: "team", MANAGED_T: ""}


def test_a_changed_value_is_not_in_sync():
    current = node(labels={"team": "nlp"}, annotations={MANAGED_L: "team", MANAGED_T: ""})
    plan = kn.k8s_node_patch(current, {"team": "vision"}, [])
    assert plan["in_sync"] is False and plan["patch"]["metadata"]["labels"] == {"team": "vision"}


def test_values_become_label_strings():
    plan = kn.k8s_node_patch(node(), {"a": True, "b": 8, "c": None}, [])
    assert plan["patch"]["metadata"]["labels"] == {"a": "true", "b": "8", "c": ""}


@pytest.mark.parametrize("labels, taints, message", [
    ({"bad key!": "x"}, [], "label key 'bad key!' is not a valid Kubernetes label key"),
    ({"team": "-leading"}, [], "label team: value '-leading' is not a valid label value"),
    ({"team": "x" * 64}, [], "is not a valid label value"),
    ({}, [{"key": "k", "effect": "Sometimes"}], "effect 'Sometimes' is not one of NoSchedule"),
    ({}, [{"key": "k"}], r"taints\[0\] needs a key and an effect"),
    ({}, [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "value": "v", "effect": "NoSchedule"}],
     "lists a key and effect twice: k:NoSchedule"),
    ("team=vision", [], "labels must be a dict"),
])
def test_bad_input(labels, taints, message):
    with pytest.raises(AnsibleFilterError, match=message):
        kn.k8s_node_patch(node(), labels, taints)


def test_not_a_node():
    with pytest.raises(AnsibleFilterError, match="node must be a Node object"):
        kn.k8s_node_patch({"kind": "Node"}, {}, [])


def test_gpu_labels_of_a_real_capture_are_accepted(fixtures):
    from ansible_collections.gpuforge.cluster.plugins.filter.nvidia_labels import gpu_labels
    from ansible_collections.gpuforge.cluster.plugins.module_utils import nvidia_smi as smi

    facts = dict(smi.parse_smi_xml((fixtures / "telegraf__a100-sxm4-v12.xml").read_text()), present=True)
    labels = gpu_labels(facts, "mixed")
    plan = kn.k8s_node_patch(node(), labels, [])
    assert plan["patch"]["metadata"]["labels"]["nvidia.com/mig-1g.20gb.count"] == "4"
    assert plan["patch"]["metadata"]["annotations"][MANAGED_L].split(",") == sorted(labels)


# --- k8s_drain_blockers -----------------------------------------------------------------------


def pod(name, namespace="default", owner=None, phase="Running", annotations=None, deleting=False):
    """A Pod as kubernetes.core.k8s_info returns it (trimmed)."""
    metadata = {"name": name, "namespace": namespace, "uid": "uid-" + name, "annotations": annotations or {}}
    if owner:
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": name.rsplit("-", 1)[0],
                                        "uid": "owner-" + name, "controller": True, "blockOwnerDeletion": True}]
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-03T12:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"nodeName": "wk-01", "containers": [{"name": "main", "image": "registry.example.internal/x:1"}]},
            "status": {"phase": phase}}


NODE_PODS = [
    pod("web-7d4b9c-x2kq", owner="ReplicaSet"),
    pod("calico-node-8xz2p", namespace="kube-system", owner="DaemonSet"),
    pod("nvidia-device-plugin-ds-4hj2k", namespace="kube-system", owner="DaemonSet"),
    pod("kube-proxy-wk-01", namespace="kube-system", annotations={"kubernetes.io/config.mirror": "5f1e"}),
    pod("job-done-abc12", owner="Job", phase="Succeeded"),
    pod("job-failed-abc13", owner="Job", phase="Failed"),
    pod("db-0", namespace="data", owner="StatefulSet"),
    pod("debug-shell"),  # no controller: kubernetes_drain_force decides
    pod("web-7d4b9c-q9zt", owner="ReplicaSet", deleting=True),  # evicted, still terminating
]


def test_drain_blockers_are_the_pods_a_drain_must_see_leave():
    # not DaemonSet pods (they stay on a cordoned node), not mirror pods (the kubelet's static pods), not finished
    # ones; pods still terminating are there until they are gone
    assert kn.k8s_drain_blockers(NODE_PODS) == [
        "data/db-0", "default/debug-shell", "default/web-7d4b9c-q9zt", "default/web-7d4b9c-x2kq"]


def test_drain_blockers_of_a_k8s_info_result_and_of_a_drained_node():
    assert kn.k8s_drain_blockers({"resources": NODE_PODS, "api_found": True, "changed": False}) == \
        kn.k8s_drain_blockers(NODE_PODS)
    drained = [p for p in NODE_PODS if kn.k8s_drain_blockers([p]) == []]
    assert len(drained) == 5 and kn.k8s_drain_blockers(drained) == []
    assert kn.k8s_drain_blockers([]) == []
    assert kn.k8s_drain_blockers({"resources": []}) == []


def test_a_pod_without_status_or_annotations_blocks():
    bare = {"metadata": {"name": "p", "namespace": "default"}}
    assert kn.k8s_drain_blockers([bare]) == ["default/p"]


@pytest.mark.parametrize("pods, message", [
    ("web-1", "k8s_drain_blockers: pods must be a list of Pod objects, got str"),
    ({"items": []}, "k8s_drain_blockers: pods must be a list of Pod objects, got dict"),
    (None, "k8s_drain_blockers: pods must be a list of Pod objects, got NoneType"),
    (["web-1"], "k8s_drain_blockers: 'web-1' is not a Pod object"),
    ([{"kind": "Pod"}], "is not a Pod object"),
])
def test_drain_blockers_bad_input(pods, message):
    with pytest.raises(AnsibleFilterError, match=message):
        kn.k8s_drain_blockers(pods)


def test_filter_module_exports():
    assert kn.FilterModule().filters() == {"k8s_node_patch": kn.k8s_node_patch,
                                           "k8s_drain_blockers": kn.k8s_drain_blockers}
