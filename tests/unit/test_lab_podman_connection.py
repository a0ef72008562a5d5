"""gpuforge.cluster.lab_podman: the podman commands it runs, recorded (the lab and Molecule tests run it
against real containers). A pipelined module goes to `podman exec -i`; the container's file system is
mounted only for a file transfer, once per connection."""

from unittest import mock

import pytest
from ansible.playbook.play_context import PlayContext
from ansible_collections.gpuforge.cluster.plugins.connection.lab_podman import Connection

MOUNT = b"/var/lib/containers/storage/overlay/abc/merged"


@pytest.fixture()
def conn(tmp_path):
    pc = PlayContext()
    pc.remote_addr = "gf-t-lab-cp1"
    connection = Connection(pc, None)
    calls = []

    def podman(cmd, cmd_args=None, in_data=None, use_container_id=True):
        calls.append((cmd if isinstance(cmd, str) else list(cmd), list(cmd_args or []), in_data))
        if cmd == "mount":
            return 0, str(tmp_path).encode(), b""
        return 0, b"out", b""

    with mock.patch.object(connection, "_podman", side_effect=podman):
        connection.calls = calls
        yield connection


def test_pipelining_is_on():
    assert Connection.has_pipelining is True and Connection.transport == "gpuforge.cluster.lab_podman"


def test_a_pipelined_module_is_fed_to_podman_exec_i(conn):
    rc, out, _ = conn.exec_command("/bin/sh -c '/usr/bin/python3 && sleep 0'", in_data=b"module source")
    assert (rc, out) == (0, b"out")
    assert conn.calls == [(["exec", "-i"], ["/bin/sh", "-c", "/usr/bin/python3 && sleep 0"], b"module source")]


def test_a_plain_command_has_no_stdin_and_nothing_is_mounted(conn):
    conn.exec_command("/bin/sh -c 'echo ~root'")
    conn.exec_command("/bin/sh -c 'true'")
    assert conn.calls == [(["exec"], ["/bin/sh", "-c", "echo ~root"], None),
                          (["exec"], ["/bin/sh", "-c", "true"], None)]


def test_a_remote_user_is_passed(conn):
    conn.user = "1000"
    conn.exec_command("id -u", in_data=b"x")
    assert conn.calls == [(["exec", "-i", "--user", "1000"], ["id", "-u"], b"x")]


def test_files_go_through_one_mount(conn, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("hello\n")
    (tmp_path / "tmp").mkdir()
    conn.exec_command("true")
    conn.put_file(str(src), "/tmp/a.txt")
    conn.put_file(str(src), "/tmp/b.txt")
    conn.fetch_file("/tmp/a.txt", str(tmp_path / "back.txt"))
    assert [c[0] for c in conn.calls] == [["exec"], "mount"]
    assert (tmp_path / "tmp" / "b.txt").read_text() == "hello\n"
    assert (tmp_path / "back.txt").read_text() == "hello\n"


def test_without_a_mount_files_go_through_podman_cp(conn, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("x")
    with mock.patch.object(conn, "_podman", side_effect=lambda cmd, cmd_args=None, in_data=None, use_container_id=True:
                           conn.calls.append((cmd, list(cmd_args or []), in_data)) or (1 if cmd == "mount" else 0, b"", b"")):
        conn.put_file(str(src), "/tmp/a.txt")
    assert conn.calls == [("mount", [], None), ("cp", [str(src), "gf-t-lab-cp1:/tmp/a.txt"], None)]
