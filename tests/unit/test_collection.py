"""Plain `pytest` from the repository root collects every test, and collecting starts nothing.

The collection runs in a subprocess (`pytest --collect-only -q`) with a PATH whose first folder
holds stand-ins for the tools a harness, a lab or a Molecule scenario would start (podman, go,
molecule, bash, ansible-playbook, kubectl, helm, mmdebstrap): each records its call and fails. Fixtures
are lazy, so none may be called, and the gpuforge caches (GPUFORGE_CACHE, GPUFORGE_K8S_CACHE)
must stay empty. The folders are also named in an order where tests/k8s comes before tests/lab and
tests/unit: a test module importing helpers through `conftest` would then get another folder's
conftest.py (the bug this guards against).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("podman", "go", "molecule", "bash", "ansible-playbook", "kubectl", "helm", "mmdebstrap", "buildah")
FOLDERS = ("tests/unit", "tests/k8s", "tests/lab", "tests/molecule")
COLLECTED = re.compile(r"^(\d+) tests? collected in ")


@pytest.fixture(scope="module")
def guarded_env(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("collect")
    shims, calls = tmp_path / "shims", tmp_path / "calls.log"
    shims.mkdir()
    for tool in TOOLS:
        shim = shims / tool
        shim.write_text(f"#!/bin/sh\necho \"{tool} $*\" >> '{calls}'\nexit 1\n")
        shim.chmod(0o755)
    caches = {"GPUFORGE_CACHE": tmp_path / "cache", "GPUFORGE_K8S_CACHE": tmp_path / "k8s-cache"}
    for path in caches.values():
        path.mkdir()
    env = {**os.environ, "PATH": os.pathsep.join([str(shims), str(Path(sys.executable).parent),
                                                  os.environ.get("PATH", "")]),
           "GOPROXY": "off", **{k: str(v) for k, v in caches.items()}}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("MOLECULE_SCENARIOS", None)
    yield env
    assert not calls.exists(), "collecting the tests started: " + calls.read_text()
    for name, path in caches.items():
        assert not any(path.iterdir()), f"collecting the tests wrote to {name}: {sorted(path.iterdir())}"


def collect(env, *args):
    """(test ids, the output) of `pytest --collect-only -q [args]` from the repository root."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"pytest --collect-only {' '.join(args)} exited {proc.returncode}:\n{out[-6000:]}"
    assert not re.search(r"^(ERROR|E) ", out, re.M), out[-6000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    summary = [m for m in map(COLLECTED.match, proc.stdout.splitlines()) if m]
    # "N tests collected in": no ", M errors" (nor warnings about modules that could not be imported)
    assert summary and int(summary[-1].group(1)) == len(ids), out[-3000:]
    return ids, out


@pytest.fixture(scope="module")
def root_collection(guarded_env):
    return collect(guarded_env)


def test_plain_pytest_collects_every_folder(root_collection):
    ids, out = root_collection
    for folder in FOLDERS:
        assert any(i.startswith(folder + "/") for i in ids), f"nothing collected under {folder}:\n{out[-3000:]}"
    # the modules that share the harness helpers (k8s_helpers.py) are collected too
    for module in ("test_harness.py", "test_kubeadm_roles.py", "test_upgrade.py", "test_cni_manifests.py"):
        assert any(i.startswith(f"tests/k8s/{module}::") for i in ids), module
    assert f"tests/unit/{Path(__file__).name}::test_plain_pytest_collects_every_folder" in ids


def test_collection_does_not_depend_on_the_folder_order(guarded_env, root_collection):
    # every folder's conftest.py is imported before tests/k8s's modules: tests/unit's comes last
    order = ("tests/k8s", "tests/molecule", "tests/lab", "tests/unit")
    ids, _ = collect(guarded_env, *order)
    assert sorted(ids) == sorted(i for i in root_collection[0] if i.startswith(tuple(f + "/" for f in order)))
