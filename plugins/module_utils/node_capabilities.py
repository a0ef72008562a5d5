# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure parsers behind gpuforge.cluster.node_capabilities.

Every function takes text (or simple values) read from the host and returns
plain Python data, so they can be unit-tested with recorded file contents.
None of them touches the host.
"""

from __future__ import annotations

import os

# systemd-detect-virt --container prints "none" (exit 1) outside a container.
NOT_A_CONTAINER = "none"


def parse_detect_virt(stdout, rc):
    """Container type from `systemd-detect-virt --container` output.

    Returns the type ("podman", "docker", "lxc", "systemd-nspawn", ...) or None
    when the tool says this is not a container (prints "none", exits 1).
    """
    value = (stdout or "").strip().splitlines()
    value = value[0].strip() if value else ""
    if rc != 0 or not value or value == NOT_A_CONTAINER:
        return None
    return value


def parse_environ(data):
    """Split a /proc/<pid>/environ blob (NUL separated) into a dict."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    env = {}
    for item in (data or "").split("\0"):
        if "=" in item:
            key, value = item.split("=", 1)
            env[key] = value
    return env


def parse_containerenv(text):
    """Container engine named in podman's /run/.containerenv (``engine="podman-4.3.1"``).

    Returns "podman" for podman (also for an empty file, as rootless podman writes),
    the engine name otherwise.
    """
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "engine":
            engine = value.strip().strip('"')
            return engine.split("-", 1)[0] or "podman"
    return "podman"


def detect_container(detect_virt=None, containerenv=None, dockerenv=False, pid1_environ=None):
    """Decide whether this host is a container, and which kind.

    detect_virt: the type reported by systemd-detect-virt (parse_detect_virt), or None.
    containerenv: the text of /run/.containerenv, or None when the file is absent.
    dockerenv: whether /.dockerenv exists.
    pid1_environ: dict of PID 1's environment (parse_environ), or None when unreadable.

    The first positive signal wins, in the order above. Returns (bool, type or None).
    """
    if detect_virt:
        return True, detect_virt
    if containerenv is not None:
        return True, parse_containerenv(containerenv)
    if dockerenv:
        return True, "docker"
    value = (pid1_environ or {}).get("container")
    if value:
        return True, value
    return False, None


def _unescape_mount(path):
    r"""Undo the octal escapes of /proc mount tables (``\040`` for a space)."""
    out = []
    i = 0
    while i < len(path):
        code = path[i + 1:i + 4]
        if path[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text):
    """Parse /proc/self/mountinfo into a list of {mount_point, fstype, source, options}."""
    mounts = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or not tail:
            continue
        mounts.append({
            "mount_point": _unescape_mount(fields[4]),
            "mount_options": fields[5] if len(fields) > 5 else "",
            "fstype": tail[0],
            "source": tail[1] if len(tail) > 1 else "",
            "super_options": tail[2] if len(tail) > 2 else "",
        })
    return mounts


def cgroup_mode(mounts, root="/sys/fs/cgroup"):
    """Cgroup layout from parsed mountinfo.

    Returns (version, mode):
      (2, "unified") cgroup2 mounted at /sys/fs/cgroup (cgroup v2 only);
      (1, "hybrid")  v1 controllers plus a cgroup2 tree (usually /sys/fs/cgroup/unified);
      (1, "legacy")  v1 controllers only;
      (None, None)   no cgroup file system mounted (or not visible).
    """
    v1 = [m for m in mounts if m["fstype"] == "cgroup"]
    v2 = [m for m in mounts if m["fstype"] == "cgroup2"]
    if any(m["mount_point"] == root for m in v2):
        return 2, "unified"
    if v1 and v2:
        return 1, "hybrid"
    if v1:
        return 1, "legacy"
    if v2:
        return 2, "unified"
    return None, None


def parse_proc_modules(text):
    """Module names from /proc/modules (first field of each line)."""
    names = []
    for line in (text or "").splitlines():
        fields = line.split()
        if fields:
            names.append(fields[0])
    return names


def module_name(path):
    """Kernel module name from a modules.builtin path: kernel/net/bridge/br_netfilter.ko -> br_netfilter."""
    base = os.path.basename(path.strip())
    for suffix in (".ko.zst", ".ko.xz", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_modules_builtin(text):
    """Module names from /lib/modules/<release>/modules.builtin."""
    return [module_name(line) for line in (text or "").splitlines() if line.strip()]


def parse_swaps(text):
    """Active swap areas from /proc/swaps.

    Returns a list of {name, type, size_kib, used_kib, priority}; an empty list
    when only the header is present.
    """
    devices = []
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or fields[0] == "Filename" or len(fields) < 5:
            continue
        try:
            size, used, priority = int(fields[2]), int(fields[3]), int(fields[4])
        except ValueError:
            continue
        devices.append({
            "name": _unescape_mount(fields[0]),
            "type": fields[1],
            "size_kib": size,
            "used_kib": used,
            "priority": priority,
        })
    return devices


def parse_timedatectl(stdout, rc):
    """NTPSynchronized from `timedatectl show -p NTPSynchronized --value`: True, False or None."""
    if rc != 0:
        return None
    value = (stdout or "").strip().lower()
    if value in ("yes", "true", "1"):
        return True
    if value in ("no", "false", "0"):
        return False
    return None


def is_systemd_pid1(comm, run_systemd_system):
    """PID 1 is systemd: its comm is "systemd" or /run/systemd/system exists (sd_booted())."""
    return (comm or "").strip() == "systemd" or bool(run_systemd_system)


# linux/capability.h
CAP_SYS_TIME = 25


def parse_cap_bounding_set(status_text):
    """CapBnd of a /proc/<pid>/status text as an int, or None when absent."""
    for line in (status_text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "CapBnd":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def has_capability(mask, bit):
    """True/False whether `bit` is set in a capability mask; None when the mask is unknown."""
    if mask is None:
        return None
    return bool(mask >> bit & 1)


def sysctl_path(key, proc_sys="/proc/sys"):
    """Path under /proc/sys of a sysctl key.

    Like sysctl(8): dots separate levels, unless the key contains a slash, in which
    case slashes separate levels and dots are literal (net/ipv4/conf/eth0.100/forwarding).
    """
    rel = key if "/" in key else key.replace(".", "/")
    return os.path.join(proc_sys, rel.strip("/"))


def normalize_sysctl(value):
    """Compare-ready form of a sysctl value: whitespace runs collapsed to one space."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = int(value)
    return " ".join(str(value).split())


def sysctl_mismatches(expected, actual):
    """Keys of `expected` whose value in `actual` differs (after normalize_sysctl).

    expected: {key: wanted value}; actual: {key: value in force, None when missing}.
    Returns {key: {"expected": str, "actual": str or None}}.
    """
    out = {}
    for key, want in (expected or {}).items():
        want = normalize_sysctl(want)
        have = normalize_sysctl(actual.get(key))
        if have != want:
            out[key] = {"expected": want, "actual": have}
    return out


def kernel_modules_status(proc_modules_exists, lib_modules_exists, modules_disabled, release):
    """Whether modules can be loaded, and why not. Returns (bool, reason or None)."""
    if not proc_modules_exists:
        return False, "/proc/modules is absent: this kernel has no loadable module support visible here"
    if not lib_modules_exists:
        return False, "/lib/modules/%s is absent: no modules for the running kernel on this host" % release
    if modules_disabled:
        return False, "kernel.modules_disabled is 1: module loading is locked until reboot"
    return True, None


def sysctl_writable_status(read_only_fs, writable):
    """Whether /proc/sys can be written, and why not. Returns (bool, reason or None)."""
    if read_only_fs:
        return False, "/proc/sys is mounted read-only"
    if not writable:
        return False, "/proc/sys is not writable by this user"
    return True, None
