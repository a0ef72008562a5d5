"""gpuforge.runner / `gpuforge run` against a small lab ("t-run": gf-t-run-cp1, gf-t-run-gpu1)."""

import hashlib
import json
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from gpuforge.runner import CENSORED, run_playbook

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).parent / "playbooks"
CP, GPU = "gf-t-run-cp1", "gf-t-run-gpu1"
SECRET = f"gf-secret-{uuid.uuid4().hex}"
FAIL_MSG = f"gpuforge-test: deliberate failure on {GPU}"


@pytest.fixture(scope="module")
def t_run(lab_factory):
    return lab_factory("t-run", hosts=2, gpu_hosts=1)


def gpuforge(*args):
    script = Path(sys.executable).parent / "gpuforge"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gpuforge.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=ROOT, check=False)


def counts(host):
    return {k: host[k] for k in ("ok", "changed", "failed", "unreachable", "skipped")}


def junit_cases(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return {suite.get("name"): {case.get("name"): case.find("failure") for case in suite.findall("testcase")}
            for suite in root.findall("testsuite")}


def test_api_change(t_run, tmp_path):
    marker, lines = uuid.uuid4().hex, []
    s = run_playbook(PLAYBOOKS / "change.yml", t_run["inventory"], extravars={"gf_marker": marker},
                     artifacts_dir=tmp_path / "art", progress=lines.append)
    assert (s.status, s.rc, s.exit_code, s.ok) == ("successful", 0, 0, True)
    assert list(s.hosts) == [CP, GPU]
    for name, host in s.hosts.items():
        assert counts(host) == {"ok": 2, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0}
        assert host["changed_tasks"] == ["Write the marker file"] and host["failed_tasks"] == []
        assert host["duration_s"] > 0
        cat = subprocess.run(["podman", "exec", name, "cat", "/etc/gpuforge-test-marker"],
                             capture_output=True, text=True, check=True)
        assert cat.stdout.strip() == marker
    assert s.totals["changed"] == 2 and s.totals["hosts"] == 2
    assert any(line.endswith("Change : Write the marker file") for line in lines)
    assert any(line.strip() == f"changed {CP}" for line in lines)
    # the run used the repo's ansible.cfg, from the repo root
    command = json.loads(next((tmp_path / "art" / "artifacts").glob("*/command")).read_text())
    assert command["cwd"] == str(ROOT)
    assert command["env"]["ANSIBLE_CONFIG"] == str(ROOT / "ansible.cfg")

    # same marker again, in check mode on one host: nothing to change
    s = run_playbook(PLAYBOOKS / "change.yml", t_run["inventory"], extravars={"gf_marker": marker},
                     limit=CP, check=True, diff=True)
    assert s.ok and list(s.hosts) == [CP] and s.hosts[CP]["changed"] == 0


def test_api_failure_on_one_host(t_run, tmp_path):
    s = run_playbook(PLAYBOOKS / "fail.yml", t_run["inventory"])
    assert (s.status, s.rc, s.exit_code, s.ok) == ("failed", 2, 2, False)
    assert counts(s.hosts[CP]) == {"ok": 2, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 1}
    assert counts(s.hosts[GPU]) == {"ok": 1, "changed": 0, "failed": 1, "unreachable": 0, "skipped": 0}
    assert s.hosts[GPU]["failed_tasks"] == [{"task": "Fail on the GPU worker", "play": "Fail", "msg": FAIL_MSG}]
    s.write_junit(tmp_path / "junit.xml")
    cases = junit_cases(tmp_path / "junit.xml")
    assert list(cases[CP]) == ["Fail : Report the host", "Fail : Continue elsewhere"]
    assert not any(f is not None for f in cases[CP].values())
    failure = cases[GPU]["Fail : Fail on the GPU worker"]
    assert failure.get("type") == "failed" and failure.get("message") == FAIL_MSG


def test_api_no_log_failure_is_censored(t_run):
    s = run_playbook(PLAYBOOKS / "no_log.yml", t_run["inventory"], extravars={"gf_secret": SECRET})
    assert s.rc == 2 and s.hosts[CP]["failed"] == 1 and s.hosts[GPU]["failed"] == 0
    assert s.hosts[CP]["failed_tasks"] == [{"task": "Fail with the secret hidden", "play": "No log", "msg": CENSORED}]
    assert SECRET not in json.dumps(s.to_dict()) + ET.tostring(s.junit(), encoding="unicode") + s.table()


def test_cli_failure_writes_summary_and_junit(t_run, tmp_path):
    proc = gpuforge("run", "tests/lab/playbooks/fail.yml", "-i", t_run["inventory"],
                    "--summary", str(tmp_path / "s.json"), "--junit", str(tmp_path / "j.xml"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Fail : Fail on the GPU worker" in proc.stderr  # progress: task starts
    assert f"FAILED {GPU}: {FAIL_MSG}" in proc.stderr  # progress: the failure
    assert f"FAILED  {GPU}: Fail : Fail on the GPU worker: {FAIL_MSG}" in proc.stdout  # final report
    table = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[1:4]}
    assert table[CP][:5] == ["2", "0", "0", "0", "1"] and table[GPU][:5] == ["1", "0", "1", "0", "0"]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rc"] == 2 and summary["status"] == "failed"
    assert summary["playbook"] == str(PLAYBOOKS / "fail.yml")
    assert summary["hosts"][GPU]["failed_tasks"][0]["msg"] == FAIL_MSG
    assert summary["totals"]["failed"] == 1 and summary["duration_s"] > 0
    assert summary["started"] <= summary["finished"]
    assert cases_failed(tmp_path / "j.xml") == {GPU: ["Fail : Fail on the GPU worker"]}


def cases_failed(path):
    return {host: [name for name, failure in cases.items() if failure is not None]
            for host, cases in junit_cases(path).items() if any(f is not None for f in cases.values())}


def test_cli_no_log_secret_stays_hidden(t_run, tmp_path):
    (tmp_path / "secret.yml").write_text(yaml.safe_dump({"gf_secret": SECRET}))
    proc = gpuforge("run", "tests/lab/playbooks/no_log.yml", "-i", t_run["inventory"], "-e", f"@{tmp_path}/secret.yml",
                    "--summary", str(tmp_path / "s.json"), "--junit", str(tmp_path / "j.xml"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"FAILED  {CP}: No log : Fail with the secret hidden: {CENSORED}" in proc.stdout
    for text in (proc.stdout, proc.stderr, (tmp_path / "s.json").read_text(), (tmp_path / "j.xml").read_text()):
        assert SECRET not in text
    assert cases_failed(tmp_path / "j.xml") == {CP: ["No log : Fail with the secret hidden"]}


def test_cli_quiet_limit_and_extra_vars(t_run, tmp_path):
    proc = gpuforge("run", "tests/lab/playbooks/change.yml", "-i", t_run["inventory"], "--limit", GPU, "--quiet",
                    "-e", "gf_marker=from-cli", "-e", '{"unused": [1, 2]}', "--summary", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Change :" not in proc.stderr and proc.stdout.splitlines()[-1].startswith("OK: successful, rc 0")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert list(summary["hosts"]) == [GPU] and summary["hosts"][GPU]["failed"] == 0
    cat = subprocess.run(["podman", "exec", GPU, "cat", "/etc/gpuforge-test-marker"],
                         capture_output=True, text=True, check=True)
    assert cat.stdout.strip() == "from-cli"


def test_cli_extra_vars_reach_the_play_only_through_a_private_file(t_run, tmp_path, process_watch,
                                                                     files_containing):
    """`gpuforge run -e gf_secret=...`: ansible-playbook gets the values as `-e @<0600 file>` only; the
    secret is in no command line but gpuforge's own (where the user typed it), in no file under
    --artifacts, TMPDIR, the summary or the JUnit file; the play got it (checked by hash)."""
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    tmpdir, art = tmp_path / "tmpdir", tmp_path / "art"
    tmpdir.mkdir()
    cli_args = ["run", "tests/lab/playbooks/secret.yml", "-i", str(t_run["inventory"]),
                "-e", f"gf_secret={SECRET}", "-e", f"gf_secret_sha256={digest}",
                "--artifacts", str(art), "--summary", str(tmp_path / "s.json"), "--junit", str(tmp_path / "j.xml")]
    cmd = [str(Path(sys.executable).parent / "gpuforge"), *cli_args]
    with process_watch(SECRET) as watch:
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmpdir)}, capture_output=True,
                              text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # the play had the value: the no_log assert passed on both hosts, which hold its hash
    summary = json.loads((tmp_path / "s.json").read_text())
    for host in (CP, GPU):
        assert counts(summary["hosts"][host]) == {"ok": 2, "changed": 1, "failed": 0, "unreachable": 0,
                                                  "skipped": 0}
        cat = subprocess.run(["podman", "exec", host, "cat", "/etc/gpuforge-test-secret.sha256"],
                             capture_output=True, text=True, check=True)
        assert cat.stdout.strip() == digest

    # in a command line only where the user typed it: gpuforge itself (and its forks before they exec)
    assert watch.polls > 10
    assert [leak for leak in watch.leaks if leak.where == "environ" or leak.argv[-len(cli_args):] != cli_args] == []
    runs = list(watch.playbook_runs.values())
    assert len(runs) == 1, runs
    files = runs[0].vars_files
    assert len(files) == 1, runs[0].argv
    (vars_file, seen), = files.items()
    assert Path(vars_file).parent.parent == tmpdir and not Path(vars_file).is_relative_to(art)
    assert seen == {"mode": 0o600, "dir_mode": 0o700, "has_secret": True}
    assert SECRET not in "\0".join(runs[0].argv)
    command = json.loads(next((art / "artifacts").glob("*/command")).read_text())["command"]
    assert command[:3] == ["ansible-playbook", "-e", f"@{vars_file}"] and command.count("-e") == 1

    # on disk nowhere, now that the run is over
    assert not Path(vars_file).parent.exists() and list(tmpdir.iterdir()) == []
    assert (art / "artifacts").is_dir() and any((art / "artifacts").glob("*/job_events/*.json"))
    # tmp_path holds --artifacts, TMPDIR, the summary and the JUnit file
    assert files_containing(SECRET, tmp_path) == []
    assert SECRET not in proc.stdout + proc.stderr


def test_cli_reports_a_missing_playbook(tmp_path):
    proc = gpuforge("run", "tests/lab/playbooks/nope.yml", "-i", "inventories/lab", "--summary", str(tmp_path / "s.json"))
    assert proc.returncode == 1 and "playbook not found" in proc.stdout
    assert json.loads((tmp_path / "s.json").read_text())["error"].startswith("playbook not found")
