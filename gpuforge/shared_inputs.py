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


# --- capture bundles (nvidia_gpu_exporter__*.txt in fixtures/nvidia-smi) ---------------------

CAPTURE_BAR = "#" * 80


def capture_sections(text: str) -> list[dict]:
    """Sections of an nvidia_gpu_exporter capture bundle: [{title, command, output}].

    Each section is a line of 80 '#', "# <phase> :: <name>", "# $ <command>" (absent for
    derived sections), another line of '#', then the raw output.
    """
    sections = []
    lines = text.splitlines()
    current = None
    i = 0
    while i < len(lines):
        if lines[i] == CAPTURE_BAR and i + 1 < len(lines) and lines[i + 1].startswith("# "):
            header = []
            i += 1
            while i < len(lines) and lines[i] != CAPTURE_BAR:
                header.append(lines[i][2:])
                i += 1
            command = [h[2:].strip() for h in header if h.startswith("$ ")]
            current = {"title": header[0], "command": command[0] if command else None, "lines": []}
            sections.append(current)
        elif current is not None:
            current["lines"].append(lines[i])
        i += 1
    for section in sections:
        section["output"] = "\n".join(section.pop("lines")) + "\n"
    return sections


def capture_output(path: Path, command: str, phase: str = "idle") -> str:
    """Output of `command` in a capture bundle; phase "idle", "load" or "capabilities".

    Raises LookupError when the bundle has no such section."""
    for section in capture_sections(Path(path).read_text()):
        if section["command"] == command and section["title"].startswith(phase + " ::"):
            return section["output"]
    raise LookupError("%s has no %s section for %r" % (Path(path).name, phase, command))
