"""Verifier of gpuforge.cluster.kubernetes_drain (molecule.yml): what the API server of the Kubernetes test
harness holds after converge, read with the harness's kubectl on the controller (Testinfra's local backend):
wk-01 drained and cordoned by gpuforge, wk-02 given back, wk-03 left to whoever cordoned it."""

import json
import os
from pathlib import Path

import pytest
import testinfra

CACHE = Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge")
KUBECONFIG = CACHE / "k8s" / "clusters" / "molecule-drain" / "admin.conf"
STATE = json.loads((KUBECONFIG.parent / "state.json").read_text())
KUBECTL = f"{STATE['bin_dir']}/kubectl --kubeconfig {KUBECONFIG}"
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
ANNOTATION = "gpuforge.io/cordoned-by"


@pytest.fixture(scope="module")
def local():
    return testinfra.get_host("local://")


def kubectl_json(local, *args):
    return json.loads(local.check_output(f"{KUBECTL} {' '.join(args)} -o json"))


def node(local, name):
    return kubectl_json(local, "get", "node", name)


def test_the_drained_node_is_cordoned_by_gpuforge(local):
    drained = node(local, "wk-01")
    assert drained["spec"].get("unschedulable") is True
    # the reason converge gave (kubernetes_drain_reason), so that only gpuforge gives it back
    assert drained["metadata"]["annotations"][ANNOTATION] == "molecule"


def test_its_pods_were_evicted_and_their_replacements_wait(local):
    before = json.loads((EPHEMERAL / "pods-before.json").read_text())
    assert len(before) == 2
    pods = kubectl_json(local, "get", "pods", "--namespace=default", "--selector=app=web")["items"]
    uids = [p["metadata"]["uid"] for p in pods]
    assert not set(uids) & set(before)  # every pod that ran on wk-01 is gone
    # the Deployment made new ones; pinned to the cordoned wk-01, none can be scheduled
    assert len(pods) == 2
    assert [p["spec"].get("nodeName") for p in pods] == [None, None]
    assert {p["status"]["phase"] for p in pods} == {"Pending"}


def test_no_pod_is_left_on_the_drained_node(local):
    pods = kubectl_json(local, "get", "pods", "--all-namespaces", "--field-selector=spec.nodeName=wk-01")["items"]
    assert pods == []


def test_the_node_gpuforge_cordoned_earlier_is_given_back(local):
    given_back = node(local, "wk-02")
    assert not given_back["spec"].get("unschedulable", False)
    assert ANNOTATION not in (given_back["metadata"].get("annotations") or {})


def test_a_node_someone_else_cordoned_stays_cordoned(local):
    theirs = node(local, "wk-03")
    assert theirs["spec"].get("unschedulable") is True
    assert ANNOTATION not in (theirs["metadata"].get("annotations") or {})


def test_the_control_plane_is_untouched(local):
    cp = node(local, "cp-01")
    assert not cp["spec"].get("unschedulable", False)
    assert ANNOTATION not in (cp["metadata"].get("annotations") or {})
