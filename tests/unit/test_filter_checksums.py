"""The sha256sums filter (plugins/filter/checksums.py): the SHA256SUMS of the CNI bundle and of image
archive folders, parsed in one place. The real input: the pinned upstream files' own SHA256SUMS."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuforge.cluster.plugins.filter.checksums import sha256sums

from gpuforge.shared_inputs import find_shared_dir

A, B = "a" * 64, "0123456789abcdef" * 4


def test_the_pinned_upstream_files_list():
    sums = sha256sums((find_shared_dir() / "charts" / "cni" / "SHA256SUMS").read_text())
    assert sums["calico/v3.28.5/manifests/calico.yaml"] == \
        "206678e7adb2e931bb97385300c408490635616f371941d68468207d6e0f9713"
    assert sums["cilium/1.18.6/cilium-1.18.6.tgz"] == "fb2af7f257395f5f9e5c2144febabf2b49b883f222345247ba107e36edb8794b"
    assert all(not path.startswith("./") for path in sums)


def test_modes_comments_and_case():
    text = f"# images\n\n{A}  ./cp.tar\n{B.upper()} *node/pause.tar\n{A}  ./cp.tar\n"
    assert sha256sums(text) == {"cp.tar": A, "node/pause.tar": B}
    assert sha256sums("") == {}


@pytest.mark.parametrize("text, message", [
    ("abc  cp.tar\n", "images/SHA256SUMS line 1 is not '<64 hex digits>  <path>': 'abc  cp.tar'"),
    (f"{A}  cp.tar\n{B}  cp.tar\n", "images/SHA256SUMS lists cp.tar twice with different checksums"),
    (None, "images/SHA256SUMS must be text, not NoneType"),
])
def test_bad_lists_name_the_file_and_line(text, message):
    with pytest.raises(AnsibleFilterError, match="^sha256sums: " + message.replace("*", r"\*").replace("(", r"\(")):
        sha256sums(text, "images/SHA256SUMS")
