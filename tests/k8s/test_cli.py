"""`gpuforge lab k8s up|status|down`: a harness kept running between commands, stopped cleanly."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from gpuforge import k8s_harness

NAME = "pytest-cli"


def gpuforge(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "gpuforge.cli", "lab", "k8s", *args], capture_output=True,
                          text=True, timeout=600, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def kubectl(harness, *args, check=True):
    return harness.kubectl(*args, check=check)


def test_up_status_down_and_a_fresh_start(tmp_path, k8s_bin):
    nodes = tmp_path / "nodes.yml"
    nodes.write_text(yaml.safe_dump({"nodes": [
        {"name": "cp", "role": "control-plane"},
        {"name": "t4", "gpu": {"capture": "telegraf__tesla-t4.xml"}}]}))
    gpuforge("down", "--name", NAME, check=False)
    try:
        up = gpuforge("up", "--name", NAME, "--nodes", str(nodes))
        harness = k8s_harness.load(NAME)
        assert f"export KUBECONFIG={harness.kubeconfig}" in up.stdout
        assert gpuforge("status", "--name", NAME).stdout.count("running") == len(k8s_harness.COMPONENTS)
        # a second `up` refuses to start over a running harness
        again = gpuforge("up", "--name", NAME, "--nodes", str(nodes), check=False)
        assert again.returncode == 1 and "already running" in again.stderr
        listed = json.loads(kubectl(harness, "get", "nodes", "-o", "json").stdout)["items"]
        assert sorted(n["metadata"]["name"] for n in listed) == ["cp", "t4"]
        kubectl(harness, "create", "configmap", "left-behind", "--from-literal=k=v")
        first = dict(harness.state)

        down = gpuforge("down", "--name", NAME)
        assert "stopped kwok, kube-scheduler, kube-controller-manager, kube-apiserver, etcd" in down.stdout
        assert not [c for c, pid in first["pids"].items() if k8s_harness._pid_alive(pid, first["workdir"])]
        assert not [p for p in first["ports"].values() if k8s_harness.port_open(p)]
        assert k8s_harness.load(NAME) is None
        assert gpuforge("status", "--name", NAME, check=False).returncode == 1

        # a new start shares nothing with the old one: new processes, empty etcd
        gpuforge("up", "--name", NAME, "--nodes", str(nodes))
        harness = k8s_harness.load(NAME)
        assert set(harness.state["pids"].values()).isdisjoint(first["pids"].values())
        gone = kubectl(harness, "get", "configmap", "left-behind", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        gpuforge("down", "--name", NAME, check=False)


def test_a_killed_test_run_leaves_nothing_to_the_next(tmp_path, k8s_bin):
    """A run killed before its teardown leaves its harness behind; the next start reaps it."""
    nodes = tmp_path / "nodes.yml"
    nodes.write_text(yaml.safe_dump({"nodes": [{"name": "w"}]}))
    script = ("import time; from gpuforge import k8s_harness as k; "
              f"h = k.Harness.start('orphan', nodes=k.load_node_set({str(nodes)!r}), build=False); "
              "print(h.workdir, flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        workdir = proc.stdout.readline().strip()
        assert workdir, "the harness did not start"
        state = json.loads((Path(workdir) / "state.json").read_text())
    finally:
        proc.kill()
        proc.wait()
    alive = [c for c, pid in state["pids"].items() if k8s_harness._pid_alive(pid, workdir)]
    assert alive == list(k8s_harness.COMPONENTS)  # orphaned, still running
    assert workdir in k8s_harness.reap_orphans()
    assert not [c for c, pid in state["pids"].items() if k8s_harness._pid_alive(pid, workdir)]
    assert not [p for p in state["ports"].values() if k8s_harness.port_open(p)]
    assert not Path(workdir).exists()
