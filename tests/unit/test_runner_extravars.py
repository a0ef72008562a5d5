"""Extra vars reach ansible-playbook only through a private 0600 file (gpuforge.runner).

The end-to-end test runs `gpuforge run` for real on this machine (a host with the local connection,
tests/lab/playbooks/secret.yml) while a thread watches every process's command line and environment
(the `process_watch` fixture of tests/conftest.py); tests/lab/test_runner.py does the same against
lab hosts. The others look at the file itself and at what happens when a run cannot start.
"""

import datetime
import hashlib
import json
import os
import shlex
import stat
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from gpuforge import runner
from gpuforge.runner import ExtraVarsError, extravars_json, run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "lab" / "playbooks" / "secret.yml"
SECRET = f"gf-unit-secret-{uuid.uuid4().hex}"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """TMPDIR for this test only (where the vars folder is made), empty afterwards."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(runner.tempfile, "tempdir", str(folder))
    yield folder
    assert not list(folder.iterdir()), sorted(folder.iterdir())


def test_the_vars_file_is_0600_in_a_0700_folder_whatever_the_umask(private_tmp):
    old = os.umask(0)
    try:
        path = runner._write_extravars({"db_password": SECRET, "n": 3, "nested": {"a": [1, None, True]}})
    finally:
        os.umask(old)
    try:
        assert path.parent.parent == private_tmp and path.parent.name.startswith("gpuforge-vars-")
        assert (mode(path), mode(path.parent)) == (0o600, 0o700)
        assert os.stat(path).st_uid == os.getuid()
        assert json.loads(path.read_text()) == {"db_password": SECRET, "n": 3, "nested": {"a": [1, None, True]}}
        assert list(path.parent.iterdir()) == [path]
    finally:
        path.unlink()
        path.parent.rmdir()


@pytest.mark.parametrize("extravars, message", [
    ({"when": datetime.date(2026, 1, 2)}, "extra vars must be JSON values .*Object of type date is not JSON"),
    ({"ratio": float("nan")}, "extra vars must be JSON values"),
    (["db_password", SECRET], "extra vars must be a mapping, not list"),
])
def test_what_is_not_json_is_refused_naming_no_value(private_tmp, extravars, message):
    with pytest.raises(ExtraVarsError, match=message) as exc:
        extravars_json(extravars)
    assert "2026" not in str(exc.value) and SECRET not in str(exc.value)
    # run_playbook reports it in the summary, starts nothing and leaves no file (private_tmp is empty)
    s = run_playbook(PLAYBOOK, ROOT / "inventories" / "lab", extravars=extravars)
    assert (s.status, s.rc, s.ok) == ("error", 1, False) and s.error.startswith("extra vars must be")


def test_the_vars_file_goes_when_the_runner_fails(private_tmp, monkeypatch):
    import ansible_runner

    seen = {}

    def broken_run(**kwargs):
        args = shlex.split(kwargs["cmdline"])
        seen["path"] = Path(args[args.index("-e") + 1][1:])
        seen["mode"] = mode(seen["path"])
        seen["extravars"] = kwargs.get("extravars")
        raise RuntimeError("runner setup failed")

    monkeypatch.setattr(ansible_runner, "run", broken_run)
    s = run_playbook(PLAYBOOK, ROOT / "inventories" / "lab", extravars={"gf_secret": SECRET})
    assert s.error == "RuntimeError: runner setup failed" and s.rc == 1
    assert seen["mode"] == 0o600 and seen["extravars"] is None  # ansible-runner never gets the values
    assert not seen["path"].exists() and not seen["path"].parent.exists()


def test_gpuforge_run_keeps_the_secret_in_the_private_file(tmp_path, process_watch, files_containing):
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"k8s_cluster": {"hosts": {
        "box-1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    secrets = tmp_path / "secrets.yml"  # the site's own vars file: the only place the secret is at rest
    secrets.write_text(yaml.safe_dump({"gf_secret": SECRET}))
    secrets.chmod(0o600)
    tmpdir, art = tmp_path / "tmpdir", tmp_path / "art"
    tmpdir.mkdir()
    args = [str(Path(sys.executable).parent / "gpuforge"), "run", str(PLAYBOOK), "-i", str(inventory),
            "-e", f"@{secrets}", "-e", f"gf_secret_sha256={digest}", "-e", f"gf_secret_hash_file={tmp_path}/hash",
            "--artifacts", str(art), "--summary", str(tmp_path / "s.json"), "--junit", str(tmp_path / "j.xml")]
    with process_watch(SECRET) as watch:
        proc = subprocess.run(args, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmpdir)}, capture_output=True,
                              text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the play got the value: the no_log assert passed and the hash it wrote is the secret's
    assert (tmp_path / "hash").read_text() == digest + "\n"
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["hosts"]["box-1"]["failed"] == 0 and summary["hosts"]["box-1"]["ok"] == 2

    # no process ever had it in its command line or environment
    assert watch.leaks == [] and watch.polls > 10
    runs = list(watch.playbook_runs.values())
    assert len(runs) == 1, runs
    files = runs[0].vars_files
    # ansible-playbook saw the values only as `-e @<private file>`, which held the secret while it ran
    private = [p for p in files if Path(p).parent.name.startswith("gpuforge-vars-")]
    assert len(private) == 1 and Path(private[0]).parent.parent == tmpdir, runs[0].argv
    assert files[private[0]] == {"mode": 0o600, "dir_mode": 0o700, "has_secret": True}
    assert set(files) == {private[0]}  # the user's @file was read by gpuforge, not handed on
    assert SECRET not in " ".join(runs[0].argv) and digest not in " ".join(runs[0].argv)
    # the ansible-runner `command` artifact is the argv it spawned
    command = json.loads(next(art.glob("artifacts/*/command")).read_text())["command"]
    assert command[:3] == ["ansible-playbook", "-e", f"@{private[0]}"] and command.count("-e") == 1
    assert command[-1] == str(PLAYBOOK)

    # gone after the run; on disk only in the site's own file
    assert not Path(private[0]).parent.exists() and list(tmpdir.iterdir()) == []
    assert files_containing(SECRET, tmp_path) == [str(secrets)]
    assert SECRET not in proc.stdout + proc.stderr
    ET.parse(tmp_path / "j.xml")


def test_the_cli_refuses_values_that_are_not_json_before_running(tmp_path, capsys):
    from gpuforge import cli

    (tmp_path / "vars.yml").write_text(f"gf_secret: {SECRET}\nwhen: 2026-01-02\n")  # YAML reads a date
    rc = cli.main(["run", str(PLAYBOOK), "-i", str(ROOT / "inventories" / "lab"), "-e", f"@{tmp_path}/vars.yml"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("gpuforge run: extra vars must be JSON values") and "type date" in err
    assert SECRET not in err and "2026" not in err
