"""Find the project's shared, read-only inputs (``shared/``): real nvidia-smi captures,
upstream CRDs and pinned charts.

They live next to the checkout (``<checkout>/../shared``) on developer machines, and
inside it (``<checkout>/shared``) on some machines. A clean clone made elsewhere (CI
clones ``main`` into a temporary folder) finds them through its ``origin`` remote,
which points at the checkout it was cloned from. ``GPUFORGE_SHARED_DIR`` overrides all.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "fixtures"


class SharedDirNotFound(RuntimeError):
    pass


def _origin_checkout(root: Path) -> Path | None:
    try:
        url = subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if url.startswith("file://"):
        url = url[len("file://"):]
    if url and os.path.isdir(url):
        return Path(url).resolve()
    return None


def candidates(root: Path = ROOT) -> list[Path]:
    """Every place looked at, in order."""
    found = []
    env = os.environ.get("GPUFORGE_SHARED_DIR")
    if env:
        found.append(Path(env))
    bases = [root]
    origin = _origin_checkout(root)
    if origin:
        bases.append(origin)
    for base in bases:
        found += [base / "shared", base.parent / "shared"]
    return found


def find_shared_dir(root: Path = ROOT) -> Path:
    """The shared folder; raises SharedDirNotFound naming every place looked at."""
    looked = candidates(root)
    for path in looked:
        if (path / MARKER).is_dir():
            return path.resolve()
    raise SharedDirNotFound(
        "shared inputs (fixtures/, crds/, charts/) not found; looked in: "
        + ", ".join(str(p) for p in looked)
        + ". Set GPUFORGE_SHARED_DIR to the folder.")


def nvidia_smi_fixtures(root: Path = ROOT) -> Path:
    return find_shared_dir(root) / "fixtures" / "nvidia-smi"
