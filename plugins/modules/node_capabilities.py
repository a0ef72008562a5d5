#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_capabilities
short_description: Report what a host allows (container, cgroups, kernel modules, sysctls, swap, systemd, time sync)
version_added: "0.1.0"
description:
  - Inspects the host and returns C(ansible_facts['gpuforge_node']), a description of what
    this host allows, so roles can apply what is possible and say clearly what is not
    (for example in a container that shares the machine's kernel).
  - Read-only. It reads C(/proc), C(/run), C(/lib/modules) and runs C(systemd-detect-virt) and
    C(timedatectl) when they are installed. It never writes anything, also not to test whether
    C(/proc/sys) is writable (that is decided with C(statvfs) and C(access)).
  - Commands run with C(LC_ALL=C) so their output can be parsed.
options:
  sysctl_keys:
    description:
      - Sysctl keys (C(net.ipv4.ip_forward), or with slashes C(net/ipv4/conf/eth0.100/forwarding))
        whose current values to read from C(/proc/sys).
      - The values are returned in C(sysctl_values), C(null) for a key that does not exist on this host.
    type: list
    elements: str
    default: []
  sysctl_expected:
    description:
      - Sysctl keys and the values they should have. Their current values are read like O(sysctl_keys)
        and compared (whitespace collapsed, booleans as 0/1); keys that differ or do not exist are returned
        in C(sysctl_not_in_force).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: The module never changes the host; it runs unchanged in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
  facts:
    support: full
    description: Returns C(ansible_facts['gpuforge_node']).
notes:
  - C(kernel_modules_loadable) is true when C(/proc/modules) and C(/lib/modules/<running kernel>) exist
    and C(kernel.modules_disabled) is not 1. A container that sees the machine's modules may still lack
    the capability to load one.
  - In a container C(swap_active) and C(swap_devices) describe the machine's swap, which the container
    cannot switch off.
seealso:
  - name: systemd-detect-virt(1)
    description: How systemd detects containers.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd-detect-virt.html
author:
  - gpuforge maintainers
"""

EXAMPLES = r"""
- name: Find out what this host allows
  gpuforge.cluster.node_capabilities:

- name: Load br_netfilter only where modules can be loaded
  community.general.modprobe:
    name: br_netfilter
  when: ansible_facts['gpuforge_node']['kernel_modules_loadable'] | bool

- name: Read the values in force of two sysctls
  gpuforge.cluster.node_capabilities:
    sysctl_keys:
      - net.ipv4.ip_forward
      - net.bridge.bridge-nf-call-iptables

- name: Show them
  ansible.builtin.debug:
    var: ansible_facts['gpuforge_node']['sysctl_values']

- name: Compare sysctls with the values they should have
  gpuforge.cluster.node_capabilities:
    sysctl_expected:
      net.ipv4.ip_forward: 1
      fs.inotify.max_user_watches: 524288

- name: Say which are not in force
  ansible.builtin.debug:
    var: ansible_facts['gpuforge_node']['sysctl_not_in_force']
"""

RETURN = r"""
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    gpuforge_node:
      description: What this host allows.
      returned: always
      type: dict
      contains:
        container:
          description: Whether the host is a container.
          type: bool
          sample: true
        container_type:
          description:
            - Kind of container, from C(systemd-detect-virt --container), C(/run/.containerenv) (podman),
              C(/.dockerenv) (docker) or C(container=) in PID 1's environment; C(null) when not a container.
          type: str
          sample: podman
        cgroup_version:
          description: 2 when cgroup v2 alone is mounted at C(/sys/fs/cgroup), 1 for v1 (legacy or hybrid), C(null) when unknown.
          type: int
          sample: 2
        cgroup_mode:
          description: C(unified) (v2 only), C(hybrid) (v1 controllers plus a v2 tree), C(legacy) (v1 only), C(null) when unknown.
          type: str
          sample: unified
        kernel_release:
          description: Release of the running kernel (C(uname -r)).
          type: str
          sample: 6.1.0-28-amd64
        kernel_modules_loadable:
          description: Whether kernel modules can be loaded here.
          type: bool
          sample: false
        loaded_modules:
          description:
            - Sorted names of the modules in C(/proc/modules) plus the ones built into the kernel
              (C(/lib/modules/<release>/modules.builtin)), where those files exist.
          type: list
          elements: str
          sample: [br_netfilter, overlay]
        sysctl_writable:
          description: Whether C(/proc/sys) can be written (not mounted read-only, and writable by this user).
          type: bool
          sample: false
        sysctl_values:
          description:
            - Current values of the keys in O(sysctl_keys) and O(sysctl_expected), whitespace collapsed;
              C(null) for a missing key.
          type: dict
          sample: {"net.ipv4.ip_forward": "1"}
        sysctl_not_in_force:
          description: Keys of O(sysctl_expected) whose current value differs, with the expected and actual value.
          type: dict
          sample: {"fs.inotify.max_user_watches": {"expected": "524288", "actual": "192536"}}
        swap_active:
          description: Whether any swap area is active (C(/proc/swaps)).
          type: bool
          sample: false
        swap_devices:
          description: Active swap areas.
          type: list
          elements: dict
          sample: [{"name": "/swap.img", "type": "file", "size_kib": 4194300, "used_kib": 0, "priority": -2}]
        systemd:
          description: Whether PID 1 is systemd.
          type: bool
          sample: true
        cap_sys_time:
          description:
            - Whether C(CAP_SYS_TIME) is in PID 1's capability bounding set (C(/proc/1/status) C(CapBnd)), which
              systemd checks for units with C(ConditionCapability=CAP_SYS_TIME) such as chronyd's; C(null) when unreadable.
            - A container that has it (a privileged one) can set the machine's clock.
          type: bool
          sample: false
        time_sync:
          description: C(NTPSynchronized) from C(timedatectl); C(null) when timedatectl is missing or cannot tell.
          type: bool
          sample: true
        reasons:
          description: For each capability that is false, a sentence saying why.
          type: dict
          sample: {"kernel_modules_loadable": "/proc/modules is absent: ...", "sysctl_writable": "/proc/sys is mounted read-only"}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpuforge.cluster.plugins.module_utils.node_capabilities import (
    CAP_SYS_TIME,
    cgroup_mode,
    detect_container,
    has_capability,
    is_systemd_pid1,
    kernel_modules_status,
    normalize_sysctl,
    parse_cap_bounding_set,
    parse_detect_virt,
    parse_environ,
    parse_modules_builtin,
    parse_mountinfo,
    parse_proc_modules,
    parse_swaps,
    parse_timedatectl,
    sysctl_mismatches,
    sysctl_path,
    sysctl_writable_status,
)

# Where the host's file system starts; unit tests point it at a recorded tree.
HOST_ROOT = "/"


def host_path(root, path):
    return os.path.join(root, path.lstrip("/"))


def read_text(path):
    """Text of a file, or None when it is absent or unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def run_tool(module, name, args):
    """(rc, stdout) of a command, or None when it is not installed."""
    tool = module.get_bin_path(name)
    if not tool:
        return None
    rc, out, dummy = module.run_command([tool] + list(args))
    return rc, out


def container_facts(module, root):
    detect_virt = None
    result = run_tool(module, "systemd-detect-virt", ["--container"])
    if result is not None:
        detect_virt = parse_detect_virt(result[1], result[0])
    environ = read_text(host_path(root, "/proc/1/environ"))
    return detect_container(
        detect_virt=detect_virt,
        containerenv=read_text(host_path(root, "/run/.containerenv")),
        dockerenv=os.path.exists(host_path(root, "/.dockerenv")),
        pid1_environ=parse_environ(environ) if environ is not None else None,
    )


def module_facts(root, release):
    proc_modules = read_text(host_path(root, "/proc/modules"))
    lib_modules = host_path(root, "/lib/modules/%s" % release)
    disabled = (read_text(host_path(root, "/proc/sys/kernel/modules_disabled")) or "0").strip() == "1"
    loadable, reason = kernel_modules_status(proc_modules is not None, os.path.isdir(lib_modules), disabled, release)
    names = set(parse_proc_modules(proc_modules))
    names.update(parse_modules_builtin(read_text(os.path.join(lib_modules, "modules.builtin"))))
    return loadable, reason, sorted(names)


def sysctl_facts(root):
    proc_sys = host_path(root, "/proc/sys")
    try:
        read_only = bool(os.statvfs(proc_sys).f_flag & os.ST_RDONLY)
    except OSError:
        return False, "%s cannot be inspected (not mounted?)" % proc_sys
    probe = host_path(root, "/proc/sys/net/ipv4/ip_forward")
    if not os.path.exists(probe):
        probe = proc_sys
    return sysctl_writable_status(read_only, os.access(probe, os.W_OK))


def sysctl_values(root, keys):
    proc_sys = host_path(root, "/proc/sys")
    return {key: normalize_sysctl(read_text(sysctl_path(key, proc_sys))) for key in keys}


def collect(module, root=None, sysctl_keys=(), sysctl_expected=None):
    """Everything gpuforge_node holds. Reads only."""
    root = HOST_ROOT if root is None else root
    release = os.uname().release
    reasons = {}

    container, container_type = container_facts(module, root)
    version, mode = cgroup_mode(parse_mountinfo(read_text(host_path(root, "/proc/self/mountinfo"))))
    if version is None:
        reasons["cgroup_version"] = "no cgroup file system is visible in /proc/self/mountinfo"

    loadable, reason, loaded = module_facts(root, release)
    if reason:
        reasons["kernel_modules_loadable"] = reason

    writable, reason = sysctl_facts(root)
    if reason:
        reasons["sysctl_writable"] = reason

    swaps = parse_swaps(read_text(host_path(root, "/proc/swaps")))

    systemd = is_systemd_pid1(read_text(host_path(root, "/proc/1/comm")), os.path.isdir(host_path(root, "/run/systemd/system")))
    if not systemd:
        reasons["systemd"] = "PID 1 is not systemd"

    cap_sys_time = has_capability(parse_cap_bounding_set(read_text(host_path(root, "/proc/1/status"))), CAP_SYS_TIME)
    if cap_sys_time is False:
        reasons["cap_sys_time"] = "CAP_SYS_TIME is not in PID 1's capability bounding set: the clock cannot be set here"

    time_sync = None
    result = run_tool(module, "timedatectl", ["show", "-p", "NTPSynchronized", "--value"])
    if result is None:
        reasons["time_sync"] = "timedatectl is not installed"
    else:
        time_sync = parse_timedatectl(result[1], result[0])
        if time_sync is None:
            reasons["time_sync"] = "timedatectl cannot tell (rc=%s)" % result[0]
        elif not time_sync:
            reasons["time_sync"] = "the system clock is not synchronized (NTPSynchronized=no)"

    sysctl_expected = sysctl_expected or {}
    values = sysctl_values(root, list(sysctl_keys) + [k for k in sysctl_expected if k not in sysctl_keys])

    return {
        "container": container,
        "container_type": container_type,
        "cgroup_version": version,
        "cgroup_mode": mode,
        "kernel_release": release,
        "kernel_modules_loadable": loadable,
        "loaded_modules": loaded,
        "sysctl_writable": writable,
        "sysctl_values": values,
        "sysctl_not_in_force": sysctl_mismatches(sysctl_expected, values),
        "swap_active": bool(swaps),
        "swap_devices": swaps,
        "systemd": systemd,
        "cap_sys_time": cap_sys_time,
        "time_sync": time_sync,
        "reasons": reasons,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sysctl_keys=dict(type="list", elements="str", default=[], no_log=False),
            sysctl_expected=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LC_ALL": "C"}
    facts = collect(module, sysctl_keys=module.params["sysctl_keys"], sysctl_expected=module.params["sysctl_expected"])
    module.exit_json(changed=False, ansible_facts={"gpuforge_node": facts})


if __name__ == "__main__":
    main()
