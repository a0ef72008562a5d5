#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: containerd_images
short_description: Import image archives into containerd (air-gapped sites), checked and pinned
version_added: "0.1.0"
description:
  - Makes the images of image archives on the host present in a containerd namespace (C(k8s.io), the one
    the kubelet's CRI uses), the way an air-gapped site brings the pause, control-plane, DNS and CNI
    images to its nodes without a registry.
  - An archive is a C(docker save) / C(podman save -m) archive (C(manifest.json) and its C(RepoTags)) or an
    OCI image layout archive whose index names its images with C(io.containerd.image.name) (what
    C(ctr images export) writes); plain or gzip-compressed.
  - Only an archive with an image the namespace lacks is imported (C(ctr images import)), after its
    SHA-256 was checked; so a second run changes nothing. Image names are compared as containerd
    stores them (C(pause:3.10) is C(docker.io/library/pause:3.10)).
  - With O(pin), every image of the archives carries the label C(io.cri-containerd.pinned=pinned): the
    kubelet's image garbage collection never removes a pinned image (containerd 1.7 and later; the label
    is harmless on 1.6), so a node under disk pressure cannot lose an image it has no registry to pull
    again from.
  - Commands run with C(LC_ALL=C) so their output can be parsed.
options:
  archives:
    description:
      - The archives on the host, each path with the SHA-256 (hex) it must have. An archive that does not match
        is refused before anything is imported.
    type: dict
    required: true
  namespace:
    description: containerd namespace.
    type: str
    default: k8s.io
  address:
    description: containerd's socket.
    type: path
    default: /run/containerd/containerd.sock
  pin:
    description: Label the images C(io.cri-containerd.pinned=pinned).
    type: bool
    default: true
  unpack:
    description:
      - Unpack the imported images into the default snapshotter (what a pull does). C(false) leaves the
        unpacking to the first container that uses an image.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports what would be imported or labelled, and changes nothing. An archive that is not on
      the host yet (its copy is predicted by check mode too) counts as to be imported.
  diff_mode:
    support: none
    description: Nothing to diff.
notes:
  - Needs C(ctr) (the containerd client, in every containerd package and release archive) on the host;
    C(/usr/local/bin) is searched too (release archives link it there).
author:
  - gpuforge maintainers
"""

EXAMPLES = r"""
- name: Bring the control-plane images to the node
  gpuforge.cluster.containerd_images:
    archives:
      /var/cache/gpuforge/images/control-plane.tar: 5f0c1c1b5c1a4f1e0c0a3c5b0f0e4e8d6c4b2a1908f7e6d5c4b3a29180706050

- name: Import without pinning, unpacked on first use
  gpuforge.cluster.containerd_images:
    archives: "{{ archives }}"
    pin: false
    unpack: false
"""

RETURN = r"""
images:
  description: Every image the archives hold, as containerd names them, sorted.
  returned: always
  type: list
  elements: str
  sample: [localhost/k8s/kube-apiserver:v1.37.2, localhost/k8s/pause:3.10.2]
imported:
  description: Archives imported by this run (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/var/cache/gpuforge/images/control-plane.tar]
pinned:
  description: Images labelled pinned by this run (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [localhost/k8s/pause:3.10.2]
"""

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import tarfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

PINNED = "io.cri-containerd.pinned"
_NAME_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


class ArchiveError(Exception):
    """An archive that cannot be imported (unreadable, names no image, a bad name)."""


def normalize_reference(ref):
    """`ref` as containerd stores an imported image's name (Docker's normalization): a name without a
    registry gets docker.io (and library/ for one path component), a name without tag or digest gets
    :latest. Raises ValueError for a name that is not a reference."""
    if not ref or ref != ref.strip() or any(c.isspace() for c in ref):
        raise ValueError(f"{ref!r} is not an image reference")
    name, _, digest = ref.partition("@")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if not all(_NAME_COMPONENT.match(c) for c in path.split("/")):
        raise ValueError(f"{ref!r} is not an image reference (repository {path!r})")
    if tag is not None and not re.match(r"^[\w][\w.-]{0,127}$", tag):
        raise ValueError(f"{ref!r} is not an image reference (tag {tag!r})")
    if digest and not re.match(r"^[a-z0-9]+:[a-f0-9]{32,}$", digest):
        raise ValueError(f"{ref!r} is not an image reference (digest {digest!r})")
    out = f"{domain}/{path}"
    if tag is not None:
        out += f":{tag}"
    elif not digest:
        out += ":latest"
    return out + (f"@{digest}" if digest else "")


def archive_images(path):
    """The names of the images an archive holds, normalized: docker archives' RepoTags, OCI layouts'
    io.containerd.image.name annotations."""
    try:
        with tarfile.open(path) as tar:
            names = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
            if "manifest.json" in names:
                manifest = json.load(tar.extractfile(names["manifest.json"]))
                refs = [t for entry in manifest for t in (entry.get("RepoTags") or [])]
            elif "index.json" in names:
                index = json.load(tar.extractfile(names["index.json"]))
                refs = [(m.get("annotations") or {}).get("io.containerd.image.name")
                        for m in index.get("manifests", [])]
                refs = [r for r in refs if r]
            else:
                raise ArchiveError(f"{path} is neither a docker archive (manifest.json) nor an OCI layout (index.json)")
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise ArchiveError(f"{path} cannot be read as an image archive: {exc}") from exc
    if not refs:
        raise ArchiveError(f"{path} names no image (docker archives need RepoTags, OCI layouts "
                           "io.containerd.image.name annotations): containerd would import it without a name")
    try:
        return sorted({normalize_reference(r) for r in refs})
    except ValueError as exc:
        raise ArchiveError(f"{path}: {exc}") from exc


def parse_images(out):
    """`ctr images ls` output -> {ref: {label: value}}. The columns are REF TYPE DIGEST SIZE PLATFORMS
    LABELS; SIZE has a space in it ("2.1 MiB"), so the labels are the last field and the ref the first."""
    images = {}
    for line in out.splitlines():
        fields = line.split()
        if not fields or fields[0] == "REF":
            continue
        labels = {}
        if len(fields) > 1 and fields[-1] != "-":
            for pair in fields[-1].split(","):
                key, _, value = pair.partition("=")
                labels[key] = value
        images[fields[0]] = labels
    return images


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Ctr:
    def __init__(self, module):
        self.module = module
        self.base = [module.get_bin_path("ctr", required=True, opt_dirs=["/usr/local/bin"]),
                     "--address", module.params["address"], "--namespace", module.params["namespace"]]

    def run(self, *args):
        rc, out, err = self.module.run_command(self.base + list(args))
        if rc != 0:
            self.module.fail_json(msg=f"ctr {' '.join(args)} failed (rc {rc}): {(err or out).strip()}",
                                  rc=rc, stdout=out, stderr=err)
        return out

    def images(self):
        return parse_images(self.run("images", "ls"))


def run(module):
    p = module.params
    ctr = Ctr(module)
    present = ctr.images()
    result = {"changed": False, "images": [], "imported": [], "pinned": []}
    wanted, to_import = set(), []
    for path, checksum in sorted(p["archives"].items()):
        expected = str(checksum).strip().lower()
        if not re.match(r"^[a-f0-9]{64}$", expected):
            module.fail_json(msg=f"{path}: {checksum!r} is not a SHA-256 (64 hex digits)")
        if not os.path.exists(path):
            if module.check_mode:  # its copy was predicted, not made
                to_import.append(path)
                continue
            module.fail_json(msg=f"{path} is not on the host")
        try:
            refs = archive_images(path)
        except ArchiveError as exc:
            module.fail_json(msg=str(exc))
        wanted.update(refs)
        if any(r not in present for r in refs):
            actual = sha256_of(path)
            if actual != expected:
                module.fail_json(msg=f"{path} has SHA-256 {actual}, not the expected {expected}: it is not the "
                                     "archive that was checked, nothing was imported")
            to_import.append(path)
    result["imported"] = to_import
    if to_import and not module.check_mode:
        for path in to_import:
            ctr.run("images", "import", *([] if p["unpack"] else ["--no-unpack"]), path)
        present = ctr.images()
        missing = sorted(wanted - set(present))
        if missing:
            module.fail_json(msg=f"after the import containerd still lacks {', '.join(missing)}", **result)
    if p["pin"]:
        result["pinned"] = sorted(r for r in wanted if present.get(r, {}).get(PINNED) != "pinned")
        if not module.check_mode:
            for ref in result["pinned"]:
                ctr.run("images", "label", ref, f"{PINNED}=pinned")
    result["images"] = sorted(wanted)
    result["changed"] = bool(result["imported"] or result["pinned"])
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            archives=dict(type="dict", required=True),
            namespace=dict(type="str", default="k8s.io"),
            address=dict(type="path", default="/run/containerd/containerd.sock"),
            pin=dict(type="bool", default=True),
            unpack=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LC_ALL": "C"}
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
