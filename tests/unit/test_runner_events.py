"""gpuforge.runner summary and JUnit builders, fed with recorded ansible-runner events.

runner_events.json is a trimmed recording of `gpuforge run` against two lab hosts and
one missing host: ok, changed, skipped, an ignored failure, a rescued failure, a
failing no_log task, a failing loop and an unreachable host.
"""

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpuforge.runner import CENSORED, SummaryBuilder, _progress_line, failure_message

EVENTS = json.loads((Path(__file__).parent / "runner_events.json").read_text())
CP, GPU, GONE = "gf-t-run-cp1", "gf-t-run-gpu1", "gf-t-run-gone"
SECRET = "hunter2-token"


def build(events=EVENTS, **kw):
    builder = SummaryBuilder("rec.yml", "hosts.yml")
    for event in copy.deepcopy(events):
        builder.add(event)
    kw.setdefault("status", "failed")
    kw.setdefault("rc", 4)
    return builder.build(started="2026-01-01T00:00:00+00:00", finished="2026-01-01T00:00:10+00:00",
                         duration_s=9.5, **kw)


def leaky_no_log_event():
    """A failed no_log result still carrying its message: only the flag may decide."""
    return {"event": "runner_on_failed", "event_data": {
        "play": "Node", "task": "Login", "host": CP, "duration": 0.5,
        "res": {"_ansible_no_log": True, "failed": True, "msg": f"bad password {SECRET}"}}}


def test_counts_come_from_the_recap():
    s = build()
    assert list(s.hosts) == [CP, GONE, GPU]
    assert {k: s.hosts[CP][k] for k in ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")} \
        == {"ok": 4, "changed": 1, "failed": 1, "unreachable": 0, "skipped": 1, "rescued": 1, "ignored": 1}
    assert s.hosts[GONE]["unreachable"] == 1 and s.hosts[GONE]["ok"] == 0
    assert s.totals == {"ok": 10, "changed": 2, "failed": 2, "unreachable": 1, "skipped": 1, "rescued": 2,
                        "ignored": 2, "hosts": 3}
    assert not s.ok and s.exit_code == 4


def test_failed_tasks_and_messages():
    s = build()
    assert s.hosts[GPU]["failed_tasks"] == [{
        "task": "Check packages", "play": "Node",
        "msg": "One or more items failed\nitem a: non-zero return code\n"
               "ls: cannot access '/nonexistent-a': No such file or directory"}]
    unreachable = s.hosts[GONE]["failed_tasks"]
    assert [t["task"] for t in unreachable] == ["Check the kernel"]
    assert unreachable[0]["msg"].startswith("Task failed: Failed to create temporary directory")
    # the ignored probe and the rescued fast path are not failures of the host
    assert [t["task"] for t in s.hosts[CP]["failed_tasks"]] == ["Set the token"]
    assert s.hosts[CP]["changed_tasks"] == ["Write the config"]


def test_task_durations_are_summed_per_host():
    s = build()
    expected = sum(e["event_data"]["duration"] for e in EVENTS
                   if e["event"].startswith("runner_on_") and e["event"] != "runner_on_start"
                   and e["event_data"]["host"] == GPU)
    assert s.hosts[GPU]["duration_s"] == pytest.approx(expected, abs=0.001)
    assert 8 < s.hosts[GPU]["duration_s"] < 9


def test_no_log_results_are_censored():
    s = build(EVENTS[:-1] + [leaky_no_log_event(), EVENTS[-1]])
    messages = [t["msg"] for t in s.hosts[CP]["failed_tasks"]]
    assert messages[0] == CENSORED
    assert messages[-1] == CENSORED  # the leaky one: flagged no_log, so its msg is dropped
    text = json.dumps(s.to_dict()) + ET.tostring(s.junit(), encoding="unicode")
    assert SECRET not in text
    assert SECRET not in (_progress_line(leaky_no_log_event(), s.results[-1], 1.0) or "")


@pytest.mark.parametrize("res, expected", [
    ({"msg": "non-zero return code", "stderr": "boom\n"}, "non-zero return code\nboom"),
    ({"msg": "MODULE FAILURE", "module_stderr": "Traceback\nValueError: x"}, "MODULE FAILURE\nTraceback\nValueError: x"),
    ({"rc": 3, "changed": False, "_ansible_verbose": True}, '{"changed": false, "rc": 3}'),
    ({"results": [{"item": "a", "failed": True, "_ansible_no_log": True, "msg": SECRET}]}, CENSORED),
    ("plain string", "plain string"),
])
def test_failure_message(res, expected):
    assert failure_message(res) == expected


def test_summary_is_json_serialisable():
    data = json.loads(json.dumps(build().to_dict()))
    assert set(data) == {"playbook", "inventory", "status", "rc", "started", "finished", "duration_s",
                         "hosts", "totals"}
    assert data["rc"] == 4 and data["duration_s"] == 9.5
    assert set(data["hosts"][CP]) == {"ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored",
                                      "duration_s", "failed_tasks", "changed_tasks"}


def test_junit_structure(tmp_path):
    s = build()
    path = tmp_path / "junit.xml"
    s.write_junit(path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "15" and root.get("failures") == "3"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert list(suites) == [CP, GONE, GPU]
    cp_cases = [c.get("name") for c in suites[CP].findall("testcase")]
    assert cp_cases == ["Node : Check the kernel", "Node : Write the config", "Node : Optional probe",
                        "Node : Try the fast path", "Node : Slow path", "Node : Set the token"]
    assert suites[CP].get("tests") == "6" and suites[CP].get("failures") == "1"
    failures = {c.get("name"): c.find("failure") for c in suites[CP].findall("testcase") if c.find("failure") is not None}
    assert list(failures) == ["Node : Set the token"]
    assert failures["Node : Set the token"].get("message") == CENSORED
    gone = suites[GONE].find("testcase/failure")
    assert gone.get("type") == "unreachable" and "temporary directory" in gone.text
    for case in root.iter("testcase"):
        assert float(case.get("time")) >= 0 and case.get("classname") in suites


def test_run_that_broke_off_counts_what_it_saw():
    events = [e for e in EVENTS if e["event"] != "playbook_on_stats"]
    s = build(events, status="failed", rc=1, error="ansible-playbook stopped before its recap: boom")
    assert s.hosts[CP]["changed"] == 1 and s.hosts[CP]["failed"] == 2  # no recap: nothing known as rescued
    assert s.to_dict()["error"].endswith("boom")
    assert "ERROR" in s.table()


def test_progress_lines():
    s = SummaryBuilder("p.yml", "i")
    lines = []
    for event in copy.deepcopy(EVENTS):
        line = _progress_line(event, s.add(event), 1.0)
        if line:
            lines.append(line.strip())
    assert lines[0] == "[   1.0s] Node : Check the kernel".strip()
    assert f"changed {CP}" in lines
    assert f"FAILED {GPU}: One or more items failed" in lines
    assert any(line.startswith(f"UNREACHABLE {GONE}: ") for line in lines)
    assert sum(line.startswith("[") for line in lines) == 8  # one per task start


def test_table_lists_hosts_and_failures():
    table = build().table()
    assert table.splitlines()[0].split() == ["host", "ok", "changed", "failed", "unreachable", "skipped", "duration"]
    assert f"FAILED  {CP}: Node : Set the token: {CENSORED}" in table
    assert table.splitlines()[-1] == "FAILED: failed, rc 4, 9.5 s"
