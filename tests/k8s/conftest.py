"""The Kubernetes test harness for these tests: one control plane for the whole session.

    def test_x(harness, core_v1):     # gpuforge.k8s_harness.Harness, kubernetes CoreV1Api
        core_v1.list_node()

The binaries come from tests/k8s/build.sh (built on a cold machine, reused when cached); the
control plane listens on 127.0.0.1 only and is stopped, with its files, when the session ends.
"""

import uuid

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
