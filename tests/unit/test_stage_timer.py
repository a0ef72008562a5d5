"""scripts/stage.sh: the per-stage time table .ci/run prints (name, seconds, CPU busy share, result)."""

import os
import subprocess
from pathlib import Path

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


def test_cpu_share_tells_a_busy_stage_from_a_waiting_one(tmp_path):
    log = tmp_path / "stages.tsv"
    stage(log, "spin", "timeout", "2", "sh", "-c", "while :; do :; done")
    stage(log, "wait", "sleep", "2")
    cpu = {line.split("\t")[0]: int(line.split("\t")[3]) for line in log.read_text().splitlines()}
    # one core spinning is 100 / cores % of the machine; a sleeping stage uses almost none of it
    assert cpu["spin"] > cpu["wait"], cpu
    assert cpu["spin"] >= 100 // os.cpu_count() // 2, cpu


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
