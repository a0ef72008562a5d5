"""Import paths for the unit tests: the collection (collections/ansible_collections/gpuforge/cluster
links to the repository root), the repository root (the gpuforge package) and tests/gpu."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for entry in (str(ROOT / "collections"), str(ROOT), str(ROOT / "tests" / "gpu")):
    if entry not in sys.path:
        sys.path.insert(0, entry)


@pytest.fixture(scope="module")
def fixtures():
    """The shared nvidia-smi captures; raises (the test fails) when they cannot be found."""
    from gpuforge.shared_inputs import nvidia_smi_fixtures

    path = nvidia_smi_fixtures()
    assert path.is_dir(), "%s is not a folder" % path
    return path
