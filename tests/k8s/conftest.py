"""The Kubernetes test harness for these tests: one control plane for the whole session.

    def test_x(harness, core_v1):     # gpuforge.k8s_harness.Harness, kubernetes CoreV1Api
        core_v1.list_node()

The binaries come from tests/k8s/build.sh (built on a cold machine, reused when cached); the
control plane listens on 127.0.0.1 only and is stopped, with its files, when the session ends.
`bundle` is the CNI bundle tests/k8s/cni_bundle.sh lays out (cached; Go module proxy on a cold
machine). Every fixture is lazy: collecting the tests starts and builds nothing.

Helpers the test modules share are in k8s_helpers.py (`from k8s_helpers import wait_for`), not here.
"""

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gpuforge import k8s_harness

try:
    from kubernetes import client
except ImportError:  # pragma: no cover - the venv has it (pyproject)
    client = None

HERE = Path(__file__).resolve().parent
# k8s_helpers.py importable by the test modules whatever pytest's import mode
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


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


@pytest.fixture(scope="session")
def bundle():
    """The CNI bundle folder (tests/k8s/cni_bundle.sh: fetched when missing or stale, else reused)."""
    script = HERE / "cni_bundle.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = Path(subprocess.run(["bash", str(script), "--print-dir"], capture_output=True, text=True,
                               check=True).stdout.strip())
    assert (path / ".stamp").is_file()
    return path
