"""Unit tests for gpuforge.cluster.containerd_images: image names as containerd stores them, the names an
archive holds (docker archives as `podman save -m` writes them, OCI layouts as `ctr images export` does),
`ctr images ls` output recorded from containerd 1.6, 1.7 and 2.2 (molecule/containerd's hosts), and the
module's decisions with `ctr` replaced by a stand-in that answers with those recordings."""

import hashlib
import io
import json
import tarfile
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpuforge.cluster.plugins.modules import containerd_images as module

# --- image names ------------------------------------------------------------------------------


@pytest.mark.parametrize("ref, stored", [
    ("localhost/k8s/pause:3.10.2", "localhost/k8s/pause:3.10.2"),
    ("pause:3.10", "docker.io/library/pause:3.10"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("k8s/kube-apiserver:v1.37.2", "docker.io/k8s/kube-apiserver:v1.37.2"),
    ("mirror.site.internal:5000/k8s/etcd:3.7.3-0", "mirror.site.internal:5000/k8s/etcd:3.7.3-0"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    ("registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/coredns/coredns:v1.12.1"),
    ("quay.io/a/b@sha256:" + "ab" * 32, "quay.io/a/b@sha256:" + "ab" * 32),
])
def test_names_as_containerd_stores_them(ref, stored):
    assert module.normalize_reference(ref) == stored


@pytest.mark.parametrize("ref", ["", "Upper/case:1", "a b:1", "x:bad tag", "x@sha256:short"])
def test_what_is_not_an_image_name(ref):
    with pytest.raises(ValueError, match="is not an image reference"):
        module.normalize_reference(ref)


# --- archives ----------------------------------------------------------------------------------

def make_archive(path, members, gzip=False):
    with tarfile.open(path, "w:gz" if gzip else "w") as tar:
        for name, data in members.items():
            data = data if isinstance(data, bytes) else json.dumps(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def docker_archive(path, *tags, gzip=False):
    """The layout `podman save -m --format docker-archive` writes: manifest.json with RepoTags per image."""
    manifest = [{"Config": f"{i:064x}.json", "RepoTags": [t], "Layers": [f"{i:064x}.tar"]} for i, t in enumerate(tags)]
    members = {"manifest.json": manifest, "repositories": {}}
    for i, _ in enumerate(tags):
        members[f"{i:064x}.json"] = {"architecture": "amd64", "os": "linux"}
        members[f"{i:064x}.tar"] = b""
    return make_archive(path, members, gzip)


def test_a_docker_archive_names_its_images(tmp_path):
    path = docker_archive(tmp_path / "cp.tar", "localhost/k8s/kube-apiserver:v1.37.2", "localhost/k8s/etcd:3.7.3-0")
    assert module.archive_images(str(path)) == ["localhost/k8s/etcd:3.7.3-0", "localhost/k8s/kube-apiserver:v1.37.2"]
    gz = docker_archive(tmp_path / "n.tar.gz", "pause:3.10", gzip=True)
    assert module.archive_images(str(gz)) == ["docker.io/library/pause:3.10"]


def test_an_oci_layout_names_its_images_with_containerds_annotation(tmp_path):
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "1" * 64, "size": 1,
         "annotations": {"io.containerd.image.name": "localhost/k8s/coredns:v1.12.1",
                         "org.opencontainers.image.ref.name": "v1.12.1"}}]}
    path = make_archive(tmp_path / "dns.tar", {"oci-layout": {"imageLayoutVersion": "1.0.0"}, "index.json": index})
    assert module.archive_images(str(path)) == ["localhost/k8s/coredns:v1.12.1"]


@pytest.mark.parametrize("members, message", [
    ({"manifest.json": [{"Config": "c.json", "RepoTags": None, "Layers": []}]}, "names no image"),
    ({"index.json": {"manifests": [{"annotations": {"org.opencontainers.image.ref.name": "1"}}]}}, "names no image"),
    ({"README": b"hello"}, "is neither a docker archive (manifest.json) nor an OCI layout (index.json)"),
    ({"manifest.json": [{"RepoTags": ["Bad Name:1"]}]}, "is not an image reference"),
])
def test_archives_that_cannot_be_imported(tmp_path, members, message):
    path = make_archive(tmp_path / "x.tar", members)
    with pytest.raises(module.ArchiveError, match=message.replace("(", r"\(").replace(")", r"\)")):
        module.archive_images(str(path))


def test_a_file_that_is_no_archive(tmp_path):
    (tmp_path / "x.tar").write_text("not a tar")
    with pytest.raises(module.ArchiveError, match="cannot be read as an image archive"):
        module.archive_images(str(tmp_path / "x.tar"))
