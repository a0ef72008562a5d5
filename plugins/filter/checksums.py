# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Checksum lists of offline folders (the CNI bundle, image archives): one parser for every role."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_LINE = re.compile(r"^([A-Fa-f0-9]{64}) [ *](.+)$")


def sha256sums(text, source="SHA256SUMS"):
    """`sha256sum` output -> {path: sha256}, paths without a leading ./ ; `source` names the file in errors."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"sha256sums: {source} must be text, not {type(text).__name__}")
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line.rstrip("\r"))
        if not m:
            raise AnsibleFilterError(f"sha256sums: {source} line {number} is not '<64 hex digits>  <path>': {line[:80]!r}")
        path = m.group(2)
        while path.startswith("./"):
            path = path[2:]
        if path in sums and sums[path] != m.group(1).lower():
            raise AnsibleFilterError(f"sha256sums: {source} lists {path} twice with different checksums")
        sums[path] = m.group(1).lower()
    return sums


class FilterModule(object):
    """gpuforge.cluster checksum filters."""

    def filters(self):
        return {"sha256sums": sha256sums}
