# Copyright (c) gpuforge maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab hosts' connection: containers.podman.podman with pipelining."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lab_podman
short_description: Run tasks in a lab host (a podman container) with pipelining
description:
  - The connection of gpuforge's lab hosts and Molecule platforms (podman containers booting systemd). It is
    C(containers.podman.podman) with two changes that cut the podman processes per task from about four to one.
  - Pipelining. A module is fed to the host's Python on the standard input of C(podman exec -i), so a task
    needs no temporary directory on the host (no C(mkdir), no copy, no C(rm)). The upstream plugin runs
    C(podman exec) without C(-i), which is why it turns pipelining off.
  - The container's file system is mounted (C(podman mount)) only when a file is copied to or from the host,
    not at the start of every task.
  - Everything else (options, file transfer, the user) is the upstream plugin's.
options:
  remote_addr:
    description: The name or ID of the container.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
      - name: ansible_podman_host
  remote_user:
    description: The user (name or UID) that runs commands in the container.
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
  podman_extra_args:
    description: Extra arguments to pass to the podman command line.
    default: ''
    ini:
      - section: defaults
        key: podman_extra_args
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
  podman_executable:
    description: The podman executable.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
notes:
  - Pipelining is used when Ansible's C(pipelining) setting is on (it is in gpuforge's C(ansible.cfg)).
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    transport = "gpuforge.cluster.lab_podman"
    has_pipelining = True

    def _connect(self):
        # No `podman mount` here: most tasks never copy a file (see _mounted).
        ConnectionBase._connect(self)
        self._connected = True
        return self

    def _mounted(self):
        if self._mount_point is None:
            PodmanConnection._connect(self)  # mounts the container's file system, or leaves it None for `podman cp`
        return self

    def exec_command(self, cmd, in_data=None, sudoable=False):
        if not self._connected:
            self._connect()
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec"]
        if in_data is not None:
            args.append("-i")  # the pipelined module arrives on the standard input
        if self.user:
            args += ["--user", self.user]
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)

    def put_file(self, in_path, out_path):
        self._mounted()
        return super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mounted()
        return super().fetch_file(in_path, out_path)
