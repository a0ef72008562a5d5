"""SSH host key checking: on for every inventory (ansible.cfg leaves Ansible's default), off only for
the lab (inventories/lab/group_vars/all.yml).

Besides reading the files, the ssh command Ansible builds is looked at: `ansible -m ping -vvv` against
127.0.0.1 port 1 (nothing listens: the connection is refused at once, no network is used) prints its
`SSH: EXEC` line, which carries `-o StrictHostKeyChecking=no` only when checking is off.
"""

import configparser
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = Path(sys.executable).parent / "ansible"
OFF = ("false", "no", "0", "off", "n", "f")


def ansible_cfg():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "ansible.cfg")
    return cfg


def test_ansible_cfg_does_not_disable_host_key_checking():
    cfg = ansible_cfg()
    for section in ("defaults", "ssh_connection", "paramiko_connection"):
        value = cfg.get(section, "host_key_checking", fallback="")
        assert value.strip().lower() not in OFF, f"ansible.cfg [{section}] host_key_checking = {value}"
    ssh_args = cfg.get("ssh_connection", "ssh_args", fallback="")
    for weak in ("StrictHostKeyChecking=no", "StrictHostKeyChecking=accept-new", "UserKnownHostsFile=/dev/null"):
        assert weak.lower() not in ssh_args.replace(" ", "").lower(), f"ansible.cfg ssh_args has {weak}"


def test_only_the_lab_inventory_turns_it_off():
    lab = yaml.safe_load((ROOT / "inventories" / "lab" / "group_vars" / "all.yml").read_text())
    assert lab["ansible_host_key_checking"] is False
    assert lab["ansible_connection"] == "gpuforge.cluster.lab_podman"
    for path in sorted((ROOT / "inventories").rglob("*.yml")):
        if path.is_relative_to(ROOT / "inventories" / "lab"):
            continue
        data = yaml.safe_load(path.read_text()) or {}
        text = yaml.safe_dump(data)
        assert "host_key_checking" not in text and "StrictHostKeyChecking=no" not in text, path


def ssh_exec_line(tmp_path, group_vars=None, *extra):
    """The `SSH: EXEC` line of `ansible -m ping` on a host at 127.0.0.1:1 with the repo's ansible.cfg."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"h1": {
        "ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_python_interpreter": "/usr/bin/python3"}}}}))
    if group_vars:
        (inventory / "group_vars").symlink_to(group_vars)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / "cp"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(ANSIBLE), "-i", str(inventory), "h1", "-m", "ansible.builtin.ping", "-vvv", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "UNREACHABLE" in out, out[-3000:]
    lines = [line for line in out.splitlines() if "SSH: EXEC ssh " in line]
    assert lines, out[-3000:]
    return lines[0]


def test_ssh_checks_host_keys_by_default(tmp_path):
    line = ssh_exec_line(tmp_path)
    assert "StrictHostKeyChecking=no" not in line and "UserKnownHostsFile=/dev/null" not in line, line


def test_the_lab_variables_turn_it_off_for_ssh(tmp_path):
    # the lab's own group_vars, with the connection switched to ssh: Ansible then tells ssh not to check
    line = ssh_exec_line(tmp_path, ROOT / "inventories" / "lab" / "group_vars", "-e", "ansible_connection=ssh")
    assert "StrictHostKeyChecking=no" in line, line
