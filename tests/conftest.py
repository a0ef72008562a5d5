"""Fixtures for every test folder: watching where a secret goes during a run.

    def test_x(process_watch, files_containing):
        with process_watch(SECRET) as watch:
            ...run ansible-playbook...
        assert not watch.leaks and watch.playbook_runs
        assert files_containing(SECRET, artifacts_dir) == []

They start nothing until a test uses them. Shared helpers are fixtures here, not importable names:
a test module's `from conftest import ...` gets whichever conftest.py pytest imported last.
"""

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Leak:
    pid: int
    where: str  # "cmdline" or "environ"
    argv: list


@dataclass
class PlaybookRun:
    """An ansible-playbook process seen while watching, with its `-e @file` files as they were then."""

    pid: int
    argv: list
    vars_files: dict = field(default_factory=dict)  # path -> {"mode", "dir_mode", "has_secret"} or None


def _ppid(pid):
    data = _read(pid, "stat")  # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    return int(data.rsplit(b")", 1)[1].split()[1]) if data else 0


def _is_playbook(argv):
    return any(Path(a).name == "ansible-playbook" for a in argv[:2])


def _read(pid, name):
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:  # gone, or not ours to read
        return None


class ProcessWatch:
    """Polls every process's command line and environment (/proc/<pid>/cmdline, environ) in a thread.

    `leaks`: each process (any on the machine) and place where `secret` showed up. `playbook_runs`:
    the ansible-playbook processes started among the test's descendants (not their forked workers), with the mode and contents (has
    the secret or not) of each file given as `-e @file`, looked at while that process ran."""

    def __init__(self, secret, interval=0.01):
        self.secret = secret.encode()
        self.interval = interval
        self.leaks, self.playbook_runs = [], {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="process-watch", daemon=True)
        self.polls = 0

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        return False

    def _loop(self):
        me = os.getpid()
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if entry.isdigit() and int(entry) != me:
                    self._look(int(entry))
            self.polls += 1
            time.sleep(self.interval)

    def _descends_from_me(self, pid):
        me = os.getpid()
        for _ in range(64):
            pid = _ppid(pid)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    def _look(self, pid):
        cmdline = _read(pid, "cmdline")
        if not cmdline:
            return
        argv = [a.decode(errors="replace") for a in cmdline.rstrip(b"\0").split(b"\0")]
        for where, data in (("cmdline", cmdline), ("environ", _read(pid, "environ") or b"")):
            if self.secret in data and not any(leak.pid == pid and leak.where == where for leak in self.leaks):
                self.leaks.append(Leak(pid, where, argv))
        if pid in self.playbook_runs or not _is_playbook(argv) or not self._descends_from_me(pid):
            return
        parent = _read(_ppid(pid), "cmdline") or b""
        if _is_playbook([a.decode(errors="replace") for a in parent.split(b"\0")]):
            return  # one of its forked workers (same argv)
        run = PlaybookRun(pid, argv)
        for i, arg in enumerate(argv[:-1]):
            if arg in ("-e", "--extra-vars") and argv[i + 1].startswith("@"):
                path = Path(argv[i + 1][1:])
                try:
                    run.vars_files[str(path)] = {"mode": path.stat().st_mode & 0o7777,
                                                 "dir_mode": path.parent.stat().st_mode & 0o7777,
                                                 "has_secret": self.secret in path.read_bytes()}
                except OSError:
                    run.vars_files[str(path)] = None
        self.playbook_runs[pid] = run


@pytest.fixture
def process_watch():
    """`with process_watch(secret) as watch:` (ProcessWatch)."""
    return ProcessWatch


def _files_containing(secret, *paths):
    """Every file under `paths` (files or folders, followed into) whose name or bytes hold `secret`."""
    needle, found = secret.encode(), []
    for top in map(Path, paths):
        for path in ([top] if top.is_file() else sorted(p for p in top.rglob("*"))):
            if secret in str(path) or (path.is_file() and needle in path.read_bytes()):
                found.append(str(path))
    return found


@pytest.fixture
def files_containing():
    """`files_containing(secret, *paths)`: the files under `paths` whose name or contents hold it."""
    return _files_containing
