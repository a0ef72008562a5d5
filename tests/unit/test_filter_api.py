"""Every filter of the collection is either used by a role or a playbook, or documented as public API
(docs/gpu-filters.md), and has tests that name it; each one has its ansible-doc file."""

import re
from pathlib import Path

import pytest

from conftest import ROOT

FILTERS = sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.yml"))
PUBLIC = (ROOT / "docs" / "gpu-filters.md").read_text()
PUBLIC = PUBLIC[PUBLIC.index("public API"):PUBLIC.index("Tests:")]


def _users():
    texts = []
    for folder in ("roles", "playbooks", "molecule"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".j2"):
                texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


USERS = _users()
TESTS = "\n".join(p.read_text() for folder in ("tests/unit", "tests/k8s") for p in (ROOT / folder).glob("*.py"))


def test_every_filter_module_filter_has_its_doc_file():
    found = set()
    for path in (ROOT / "plugins" / "filter").glob("*.py"):
        found.update(re.findall(r'"([a-z0-9_]+)": [a-z0-9_]+', path.read_text().split("def filters(self):")[-1]))
    assert found == set(FILTERS), set(FILTERS) ^ found


@pytest.mark.parametrize("name", FILTERS)
def test_a_filter_is_used_or_public_and_tested(name):
    used = re.search(r"gpuforge\.cluster\.%s\b" % name, USERS)
    assert used or ("`%s`" % name) in PUBLIC, f"{name}: no role or playbook uses it and docs/gpu-filters.md does not list it"
    assert re.search(r"\b%s\b" % name, TESTS), f"{name}: no test names it"
