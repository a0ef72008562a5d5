"""scripts/stage.sh: the per-stage time table .ci/run prints (name, seconds, CPU busy share, result)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "scripts" / "stage.sh"


def stage(log, *args, **env_extra):
    env = dict(os.environ, GPUFORGE_STAGE_LOG=str(log))
    env.pop("GPUFORGE_STAGE_PREFIX", None)  # make test sets it for the unit stage itself
    env.update(env_extra)
    return subprocess.run(["bash", str(STAGE), *args], env=env, capture_output=True, text=True, check=False)


def test_a_stage_keeps_its_command_exit_status_and_is_logged(tmp_path):
    log = tmp_path / "stages.tsv"
    assert stage(log, "ok-stage", "true").returncode == 0
    assert stage(log, "bad-stage", "bash", "-c", "exit 3").returncode == 3
    rows = [line.split("\t") for line in log.read_text().splitlines()]
    assert [(r[0], r[2]) for r in rows] == [("ok-stage", "0"), ("bad-stage", "3")]
    for name, seconds, _, cpu in rows:
        assert seconds.isdigit() and (cpu == "-" or 0 <= int(cpu) <= 100), (name, seconds, cpu)


def test_side_by_side_stages_name_every_line_and_keep_the_exit_status(tmp_path):
    log = tmp_path / "stages.tsv"
    proc = stage(log, "lint", "bash", "-c", "echo one; echo two >&2; exit 4", GPUFORGE_STAGE_PREFIX="1")
    assert proc.returncode == 4
    assert sorted(proc.stdout.splitlines()) == ["[lint] one", "[lint] two"]
    assert log.read_text().split("\t")[:3:2] == ["lint", "4"]
    plain = stage(log, "unit", "echo", "three")
    assert plain.stdout == "three\n"


@pytest.mark.parametrize("after, share", [
    ("cpu  700 0 200 1000 100 0 0 0 0 0", 70),  # 700 of 1000 jiffies busy: a compile
    ("cpu  110 0 110 1680 100 0 0 0 0 0", 2),  # idle and iowait are not busy: a stage that waits
])
def test_cpu_share_is_the_busy_part_of_all_cpus_meanwhile(tmp_path, after, share):
    """The share comes from /proc/stat before and after the stage (here two recorded samples: the
    stage's command writes the second), so it holds whatever else runs on the machine."""
    log, stat = tmp_path / "stages.tsv", tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n")
    proc = stage(log, "s", "bash", "-c", f"echo '{after}' > {stat}", GPUFORGE_STAGE_PROC_STAT=str(stat))
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().split("\t")[3].strip() == str(share)


def test_table_names_every_stage_its_result_and_the_sum(tmp_path):
    log = tmp_path / "stages.tsv"
    log.write_text("unit\t16\t0\t97\nmolecule\t1298\t1\t99\nold-row\t5\t0\n")
    out = stage(log, "--table").stdout.splitlines()
    assert out[0].split() == ["stage", "seconds", "min", "cpu%", "result"]
    assert out[1].split() == ["unit", "16", "0.3", "97", "ok"]
    assert out[2].split() == ["molecule", "1298", "21.6", "99", "FAILED", "(rc", "1)"]
    assert out[3].split() == ["old-row", "5", "0.1", "-", "ok"]
    assert out[4].split() == ["sum", "of", "stages", "1319", "22.0"]


def test_table_without_stages_says_so(tmp_path):
    assert "none recorded" in stage(tmp_path / "missing.tsv", "--table").stdout
