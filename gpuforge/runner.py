"""Runs a playbook through ansible-runner and summarises it for people and CI.

    summary = run_playbook("site.yml", "inventories/lab")
    summary.write_json("summary.json"); summary.write_junit("junit.xml")

The summary is built from runner events: per-host counts from `playbook_on_stats`,
failed tasks from `runner_on_failed` / `runner_on_unreachable`, durations from the
per-task timings of the `runner_on_*` events. Results of `no_log` tasks are never
copied: only Ansible's censored placeholder is.

Extra vars reach ansible-playbook only through a 0600 file in a private (0700) temporary folder,
given as `-e @<file>` and removed when the run ends. ansible-runner would otherwise put them on
the command line (`-e '{...}'`: visible in `ps`, saved in `<artifacts>/<ident>/command`) or, with
env files, in `env/extravars` of the artifacts folder.
"""

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gpuforge.lab import natural_key, repo_root

CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
MSG_LIMIT = 2000
RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
COUNTS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
# playbook_on_stats keys for the COUNTS above
STATS_KEYS = {"ok": "ok", "changed": "changed", "failed": "failures", "unreachable": "dark",
              "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}


def _is_no_log(res):
    if not isinstance(res, dict):
        return False
    if res.get("_ansible_no_log") or "censored" in res:
        return True
    return any(_is_no_log(item) for item in res.get("results") or [] if isinstance(item, dict))


def _text(value):
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def failure_message(res):
    """A short, safe message for a failed or unreachable result (`res` of a runner event)."""
    if not isinstance(res, dict):
        return _text(res)[:MSG_LIMIT]
    if _is_no_log(res):
        return CENSORED
    parts = [_text(res["msg"])] if res.get("msg") else []
    for key in ("stderr", "module_stderr", "stdout", "module_stdout"):
        if res.get(key):
            tail = "\n".join(_text(res[key]).strip().splitlines()[-10:])
            if tail and tail not in parts[0:1]:
                parts.append(tail)
            break
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            parts.append(f"item {_text(item.get('item', '?'))}: {failure_message(item)}")
    if not parts:
        parts.append(_text({k: v for k, v in res.items() if not k.startswith("_ansible")}))
    return "\n".join(parts)[:MSG_LIMIT]


@dataclass
class RunSummary:
    """What a run did, per host. `to_dict()` is the JSON written by --summary."""

    playbook: str
    inventory: str
    status: str = "unknown"
    rc: int = -1
    started: str = ""
    finished: str = ""
    duration_s: float = 0.0
    hosts: dict = field(default_factory=dict)
    totals: dict = field(default_factory=dict)
    error: str | None = None
    results: list = field(default_factory=list, repr=False)  # per host and task, for JUnit

    @property
    def ok(self):
        return self.rc == 0 and not (self.totals.get("failed") or self.totals.get("unreachable"))

    @property
    def exit_code(self):
        return 0 if self.ok else (self.rc if self.rc and self.rc > 0 else 1)

    def to_dict(self):
        data = {k: getattr(self, k) for k in ("playbook", "inventory", "status", "rc", "started", "finished",
                                              "duration_s", "hosts", "totals")}
        if self.error:
            data["error"] = self.error
        return data

    def write_json(self, path):
        _write(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def junit(self):
        """JUnit XML: one testsuite per host, one testcase ("play : task") per task that ran there."""
        suites = ET.Element("testsuites", name=Path(self.playbook).name)
        for host in self.hosts:
            cases = [r for r in self.results if r["host"] == host and r["status"] != "skipped"]
            failures = sum(r["status"] in ("failed", "unreachable") for r in cases)
            suite = ET.SubElement(suites, "testsuite", name=host, tests=str(len(cases)), failures=str(failures),
                                  errors="0", skipped="0", time=f"{self.hosts[host]['duration_s']:.3f}",
                                  timestamp=self.started)
            for r in cases:
                case = ET.SubElement(suite, "testcase", name=f"{r['play']} : {r['task']}", classname=host,
                                     time=f"{r['duration_s']:.3f}")
                if r["status"] in ("failed", "unreachable"):
                    msg = r["msg"] or r["status"]
                    fail = ET.SubElement(case, "failure", message=msg.splitlines()[0][:200] if msg else "",
                                         type=r["status"])
                    fail.text = msg
        suites.set("tests", str(sum(int(s.get("tests")) for s in suites)))
        suites.set("failures", str(sum(int(s.get("failures")) for s in suites)))
        suites.set("time", f"{self.duration_s:.3f}")
        return suites

    def write_junit(self, path):
        tree = ET.ElementTree(self.junit())
        ET.indent(tree)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tree.write(path, encoding="utf-8", xml_declaration=True)

    def table(self):
        """The readable end-of-run report."""
        head = ("host", "ok", "changed", "failed", "unreachable", "skipped", "duration")
        rows = [(h, *(str(v[k]) for k in head[1:6]), f"{v['duration_s']:.1f}s") for h, v in self.hosts.items()]
        rows.append(("TOTAL", *(str(self.totals.get(k, 0)) for k in head[1:6]), ""))
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*head), *(fmt.format(*r) for r in rows)]
        for host, v in self.hosts.items():
            for t in v["failed_tasks"]:
                first = t["msg"].splitlines()[0][:200] if t["msg"] else ""
                lines.append(f"FAILED  {host}: {t['play']} : {t['task']}: {first}")
        if self.error:
            lines.append(f"ERROR  {self.error}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: {self.status}, rc {self.rc}, {self.duration_s:.1f} s")
        return "\n".join(lines)


class SummaryBuilder:
    """Feeds on ansible-runner event dicts; `build()` makes the RunSummary."""

    def __init__(self, playbook, inventory):
        self.playbook, self.inventory = str(playbook), str(inventory)
        self.results = []
        self.stats = None
        self.hosts_seen = []

    def add(self, event):
        """Records one event; returns the task result dict it made (or None)."""
        kind, data = event.get("event"), event.get("event_data") or {}
        if kind == "playbook_on_stats":
            self.stats = data
            return None
        if kind not in RESULT_EVENTS or not data.get("host"):
            return None
        res = data.get("res") or {}
        status = RESULT_EVENTS[kind]
        if status == "ok" and isinstance(res, dict) and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        result = {
            "host": data["host"], "play": data.get("play", ""), "role": data.get("role", ""), "task": data.get("task", ""),
            "status": status,
            "duration_s": float(data.get("duration") or 0.0),
            "msg": failure_message(res) if status in ("failed", "unreachable", "ignored") else None,
        }
        self.results.append(result)
        if data["host"] not in self.hosts_seen:
            self.hosts_seen.append(data["host"])
        return result

    def build(self, status="unknown", rc=-1, started=None, finished=None, duration_s=0.0, error=None):
        stats = self.stats or {}
        names = list(self.hosts_seen)
        for key in STATS_KEYS.values():
            names += [h for h in stats.get(key) or {} if h not in names]
        hosts = {}
        for host in sorted(names, key=natural_key):
            mine = [r for r in self.results if r["host"] == host]
            if self.stats is not None:
                counts = {k: int((stats.get(s) or {}).get(host, 0)) for k, s in STATS_KEYS.items()}
                # a failure a `rescue:` handled is not a failure of the host: only the last
                # `failed` ones (by the recap) stay failed
                failed = [r for r in mine if r["status"] in ("failed", "rescued")]
                for i, r in enumerate(failed):
                    r["status"] = "failed" if i >= len(failed) - counts["failed"] else "rescued"
            else:  # no recap (the run broke off): count the results we saw
                counts = {k: sum(r["status"] == k for r in mine) for k in COUNTS}
                counts["ok"] += counts["changed"]
            hosts[host] = {
                **counts,
                "duration_s": round(sum(r["duration_s"] for r in mine), 3),
                "failed_tasks": [{"task": r["task"], "play": r["play"], "msg": r["msg"]}
                                 for r in mine if r["status"] in ("failed", "unreachable")],
                "changed_tasks": [r["task"] for r in mine if r["status"] == "changed"],
            }
        totals = {k: sum(h[k] for h in hosts.values()) for k in COUNTS}
        totals["hosts"] = len(hosts)
        return RunSummary(self.playbook, self.inventory, status=status, rc=rc, started=started or "",
                          finished=finished or "", duration_s=round(duration_s, 3), hosts=hosts,
                          totals=totals, error=error, results=self.results)


def _progress_line(event, result, elapsed):
    """One short line for a task start, a change or a failure (None for other events)."""
    data = event.get("event_data") or {}
    if event.get("event") in ("playbook_on_task_start", "playbook_on_handler_task_start"):
        return f"[{elapsed:6.1f}s] {data.get('play', '')} : {data.get('task', '')}"
    if result and result["status"] in ("changed", "failed", "unreachable", "ignored"):
        label = {"changed": "changed", "failed": "FAILED", "unreachable": "UNREACHABLE",
                 "ignored": "failed (ignored)"}[result["status"]]
        msg = f": {result['msg'].splitlines()[0][:160]}" if result["msg"] else ""
        return f"           {label} {result['host']}{msg}"
    return None


def _resolve(path, root):
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (root / path).resolve()


def _now():
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class ExtraVarsError(ValueError):
    """Extra vars that cannot be handed to ansible-playbook (not a mapping, not JSON values)."""


def extravars_json(extravars):
    """`extravars` as the JSON text ansible-playbook reads; ExtraVarsError when they are not a
    mapping of JSON values (the message names the type, never a value)."""
    if not isinstance(extravars, dict):
        raise ExtraVarsError(f"extra vars must be a mapping, not {type(extravars).__name__}")
    try:
        return json.dumps(extravars, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ExtraVarsError(f"extra vars must be JSON values (strings, numbers, booleans, null, lists, "
                             f"mappings): {exc}") from None


def _write_extravars(extravars):
    """Writes `extravars` as JSON to a new 0600 file in a new private (0700) temporary folder.

    Returns the file's path; the caller removes its folder (`shutil.rmtree(path.parent)`). Raises
    ExtraVarsError (extravars_json) before anything is written."""
    text = extravars_json(extravars)
    folder = Path(tempfile.mkdtemp(prefix="gpuforge-vars-"))  # 0700, owned by us
    path = folder / "extravars.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask
            f.write(text)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def run_playbook(playbook, inventory, limit=None, tags=None, skip_tags=None, extravars=None, check=False,
                 diff=False, artifacts_dir=None, progress=None):
    """Runs `playbook` against `inventory` (paths relative to cwd, else the repo root) -> RunSummary.

    The repo's ansible.cfg is used (collections_path, fact cache) and the run's cwd is
    the repo root. `progress(line)` gets one line per task start, change and failure.
    `artifacts_dir` keeps ansible-runner's private data dir (events, stdout); by
    default a temporary one is used and removed. `extravars` (a mapping) go to
    ansible-playbook as `-e @<0600 file>` only, never on its command line nor in
    `artifacts_dir` (see the module's docstring); the file is removed after the run.
    """
    import ansible_runner  # imported here: `gpuforge lab` works without it

    root = repo_root()
    playbook, inventory = _resolve(playbook, root), _resolve(inventory, root)
    builder = SummaryBuilder(playbook, inventory)
    for what, path in (("playbook", playbook), ("inventory", inventory)):
        if not path.exists():
            return builder.build("error", 1, _now(), _now(), error=f"{what} not found: {path}")

    args = []
    for flag, value in (("--limit", limit), ("--tags", tags), ("--skip-tags", skip_tags)):
        if value:
            args += [flag, value if isinstance(value, str) else ",".join(value)]
    args += ["--check"] if check else []
    args += ["--diff"] if diff else []
    bindir = str(Path(sys.executable).parent)
    envvars = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")]),  # ansible-playbook of this venv
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    private = Path(artifacts_dir) if artifacts_dir else Path(tempfile.mkdtemp(prefix="gpuforge-run-"))
    private.mkdir(parents=True, exist_ok=True)
    start, started = time.monotonic(), _now()

    def handler(event):
        result = builder.add(event)
        if progress:
            line = _progress_line(event, result, time.monotonic() - start)
            if line:
                progress(line)
        return True

    status, rc, error, vars_file = "error", 1, None, None
    try:
        if extravars:
            vars_file = _write_extravars(extravars)
            args += ["-e", f"@{vars_file}"]
        r = ansible_runner.run(
            private_data_dir=str(private), project_dir=str(root), playbook=str(playbook),
            inventory=str(inventory), cmdline=shlex.join(args) if args else None,
            # no `extravars=`: ansible-runner would put them in argv (and the `command` artifact)
            envvars=envvars, event_handler=handler, quiet=True, suppress_env_files=True,
            fact_cache_type="ansible.cfg",  # anything but "jsonfile": keep ansible.cfg's fact cache
            ident=datetime.now().strftime("%Y%m%d-%H%M%S-%f"),
        )
        status, rc = r.status, r.rc if r.rc is not None else 1
        if rc != 0 and builder.stats is None:
            error = "ansible-playbook stopped before its recap: " + _tail(r.stdout)
    except ExtraVarsError as exc:
        error = str(exc)
    except Exception as exc:  # runner setup errors: report them in the summary, not a traceback
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if vars_file is not None:
            shutil.rmtree(vars_file.parent, ignore_errors=True)
        if not artifacts_dir:
            shutil.rmtree(private, ignore_errors=True)
    return builder.build(status, rc, started, _now(), time.monotonic() - start, error)


def _tail(stream, lines=20):
    try:
        text = stream.read()
    except Exception:  # pragma: no cover - closed or missing stdout file
        return "(no output)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _write(path, text):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
