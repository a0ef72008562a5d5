"""Unit tests for gpuforge.cluster.k8s_node_patch (plugins/filter/kubernetes_nodes.py)."""

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
