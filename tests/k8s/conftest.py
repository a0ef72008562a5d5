"""The Kubernetes test harness for these tests: one control plane for the whole session.

    def test_x(harness, core_v1):     # gpuforge.k8s_harness.Harness, kubernetes CoreV1Api
        core_v1.list_node()

The binaries come from tests/k8s/build.sh (built on a cold machine, reused when cached); the
control plane listens on 127.0.0.1 only and is stopped, with its files, when the session ends.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from gpuforge import k8s_harness

try:
    from kubernetes import client
except ImportError:  # pragma: no cover - the venv has it (pyproject)
    client = None


@pytest.fixture(scope="session")
def k8s_bin():
    """The folder of the harness binaries (built when missing)."""
    return k8s_harness.ensure_binaries(quiet=False)


@pytest.fixture(scope="session")
def harness(k8s_bin):
    started = k8s_harness.Harness.start("pytest", build=False, progress=print)
    yield started
    pids = dict(started.state["pids"])
    ports = dict(started.state["ports"])
    started.stop()
    # nothing left behind: no process, no listening port, no files
    assert not [c for c, pid in pids.items() if k8s_harness._pid_alive(pid, str(started.workdir))]
    assert not [p for p in ports.values() if k8s_harness.port_open(p)]
    assert not started.workdir.exists()


@pytest.fixture(scope="session")
def api(harness):
    with harness.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="session")
def core_v1(api):
    return client.CoreV1Api(api)


@pytest.fixture
def namespace(core_v1):
    """A fresh namespace, deleted after the test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace({"metadata": {"name": name}})
    yield name
    core_v1.delete_namespace(name)


# --- helpers the test modules import (from conftest import ...) ------------------------------

ROOT = Path(__file__).resolve().parents[2]


def wait_for(what, check, timeout=60):
    """check()'s first true value, polled every 0.25 s; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def ansible_playbook(inventory, bin_dir, playbook, *extra, timeout=600):
    """ansible-playbook from the repo root with its ansible.cfg, the harness binaries first on PATH."""
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "LC_ALL": "C.UTF-8"}
    return subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def recap(output):
    """{host: {ok, changed, failed, ...}} of the PLAY RECAP."""
    out = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        host, _, counts = line.partition(" : ")
        pairs = [p.split("=") for p in counts.split()]
        if counts and all(len(p) == 2 and p[1].isdigit() for p in pairs):
            out[host.strip()] = {k: int(v) for k, v in pairs}
    return out
