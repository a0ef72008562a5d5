"""Verifier of gpuforge.cluster.kubernetes_worker (molecule.yml): workers that have joined are left
alone, and nothing was asked of the first control plane for them."""

import json
import os
import subprocess
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge")
HARNESS = CACHE / "k8s" / "clusters" / "molecule-worker"
BIN = Path(json.loads((HARNESS / "state.json").read_text())["bin_dir"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
WORKERS = ["wk-01", "wk-02"]


def test_no_bootstrap_token_was_made():
    out = subprocess.run([BIN / "kubeadm", "token", "list", "--kubeconfig", HARNESS / "admin.conf"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "gpuforge join" not in out


@pytest.mark.parametrize("worker", WORKERS)
def test_joined_worker_is_untouched(worker):
    folder = EPHEMERAL / worker / "etc-kubernetes"
    assert sorted(p.name for p in folder.iterdir()) == ["kubelet.conf"]
    assert (folder / "kubelet.conf").read_bytes() == (HARNESS / "admin.conf").read_bytes()


def test_the_workers_are_nodes_of_the_cluster():
    out = subprocess.run([BIN / "kubectl", "--kubeconfig", HARNESS / "admin.conf", "get", "nodes", "-o", "json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    ready = {n["metadata"]["name"]: [c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"]
             for n in json.loads(out)["items"]}
    assert {w: ready[w] for w in WORKERS} == {w: ["True"] for w in WORKERS}
