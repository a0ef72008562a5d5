"""Runs every Molecule scenario under molecule/ as a gate.

`molecule test` runs converge, idempotence and verify, but its `check` step does
not fail when check mode reports changes. This driver runs the steps one by one
and asserts, per scenario:

* converge succeeds,
* idempotence: the second converge reports changed=0 (Molecule's own gate),
* check mode (`--check --diff` after converge) succeeds and reports changed=0,
* the Testinfra verifier passes,
* destroy always runs.

Select scenarios with MOLECULE_SCENARIOS="a b" (default: all of them).
"""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _containers(scenario):
    """Whether a scenario boots lab-image containers (the slow ones: packages, systemd, two converges)."""
    return "image: localhost/gpuforge-lab" in (ROOT / "molecule" / scenario / "molecule.yml").read_text()


# The container scenarios first, so that the parallel workers (make molecule) do not end on one of them
# alone: longest first is the schedule that finishes soonest.
SCENARIOS = sorted((p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml")),
                   key=lambda s: (not _containers(s), s))
SELECTED = os.environ.get("MOLECULE_SCENARIOS", "").split() or SCENARIOS
RECAP = re.compile(r"^\s*\S*?\s*([\w.-]+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def molecule(step, scenario):
    """Runs one Molecule step; its output (per-task times from profile_tasks) is kept in
    artifacts/molecule/<scenario>/<step>.log, whatever the step's outcome."""
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    start = time.monotonic()
    proc = subprocess.run(
        ["molecule", step, "-s", scenario],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    out = ANSI.sub("", proc.stdout + proc.stderr)
    logs = ROOT / "artifacts" / "molecule" / scenario
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{step}.log").write_text(
        f"# molecule {step} -s {scenario}: rc={proc.returncode}, {time.monotonic() - start:.0f} s\n{out}")
    return proc.returncode, out


def recap(output):
    """Host recap lines of the last play recap in `output`: {host: changed}."""
    hosts = {}
    for line in output.splitlines():
        line = line.replace("│", " ")
        m = RECAP.match(line)
        if m and m.group(1) != "localhost":
            hosts[m.group(1)] = int(m.group(3))
    return hosts


@pytest.mark.lab
@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s in SELECTED])
def test_scenario(scenario):
    try:
        for step in ("destroy", "create", "converge"):
            rc, out = molecule(step, scenario)
            assert rc == 0, f"molecule {step} failed for {scenario}:\n{out[-6000:]}"

        rc, out = molecule("idempotence", scenario)
        assert rc == 0, f"{scenario}: second converge changed something:\n{out[-6000:]}"

        rc, out = molecule("check", scenario)
        assert rc == 0, f"{scenario}: check mode failed:\n{out[-6000:]}"
        changed = recap(out)
        assert changed, f"{scenario}: no play recap found in check-mode output:\n{out[-3000:]}"
        assert all(v == 0 for v in changed.values()), (
            f"{scenario}: check mode reports changes {changed}:\n{out[-6000:]}"
        )

        rc, out = molecule("verify", scenario)
        assert rc == 0, f"{scenario}: verifier failed:\n{out[-6000:]}"
        assert re.search(r"\d+ passed", out), f"{scenario}: verifier ran no test:\n{out[-3000:]}"
        assert not re.search(r"\d+ (failed|skipped)", out), f"{scenario}: verifier skipped or failed tests"
    finally:
        molecule("destroy", scenario)
