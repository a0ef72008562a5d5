"""Shared fixtures for tests that start their own lab hosts (podman containers).

    def test_x(lab_factory):
        lab = lab_factory("t-x", hosts=2, gpu_hosts=1)   # gpuforge.lab.up() result
        run_playbook(..., lab["inventory"])

Each lab gets its own inventory folder (hosts.yml + a group_vars link to
inventories/lab/group_vars, so the podman connection variables apply). Labs are
removed at the end of the session; calling the factory again with the same name
reuses (or reshapes) the running lab.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from gpuforge import lab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab_factory():
    if not shutil.which("podman"):
        pytest.fail("podman is not installed: run scripts/bootstrap.sh (the lab tests need real hosts)")
    workdirs = {}

    def factory(name, hosts=2, gpu_hosts=1, control_planes=1):
        if name not in workdirs:
            # not pytest's tmp_path: other pytest sessions on this machine may prune it
            workdirs[name] = Path(tempfile.mkdtemp(prefix=f"gpuforge-{name}-"))
            (workdirs[name] / "group_vars").symlink_to(ROOT / "inventories" / "lab" / "group_vars")
        return lab.up(name=name, hosts=hosts, gpu_hosts=gpu_hosts, control_planes=control_planes,
                      inventory=workdirs[name] / "hosts.yml")

    yield factory
    for name, workdir in workdirs.items():
        lab.down(name=name, inventory=workdir / "hosts.yml")
        shutil.rmtree(workdir, ignore_errors=True)
