"""The hypothesis-kind registry is the one list of kinds: the JSON schema's enum, the Markdown
suggestions and the truth's finding-to-kind map follow it. Regenerate the schema's enum after adding a
kind with `UPDATE_GOLDEN=1 python -m pytest tests/ranking/test_registry.py`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson

from rca.model import FINDING_KINDS
from rca.ranking import all_kinds, kind_names
from rca.truth import finding_to_hypothesis

SCHEMA = Path(__file__).resolve().parent.parent.parent / "rca" / "report.schema.json"
ENUM_LINE = re.compile(r'^(\s*"kind": \{"enum": )\[[^\]]*\](\},?)$', re.MULTILINE)


def test_schema_kind_enum_lists_every_registered_kind():
    text = SCHEMA.read_text()
    enum = orjson.loads(text)["properties"]["hypotheses"]["items"]["properties"]["kind"]["enum"]
    if set(enum) != set(kind_names()) and os.environ.get("UPDATE_GOLDEN"):
        names = ", ".join(f'"{name}"' for name in kind_names())
        text, n = ENUM_LINE.subn(lambda m: f"{m.group(1)}[{names}]{m.group(2)}", text, count=1)
        assert n == 1
        SCHEMA.write_text(text)
        enum = orjson.loads(text)["properties"]["hypotheses"]["items"]["properties"]["kind"]["enum"]
    assert sorted(enum) == sorted(kind_names()), "run UPDATE_GOLDEN=1 python -m pytest tests/ranking/test_registry.py"


def test_every_kind_declares_its_parts():
    names = kind_names()
    assert len(names) == len(set(names)) and len(names) >= 5
    for kind in all_kinds():
        assert re.fullmatch(r"[a-z][a-z_]*", kind.name)
        assert kind.suggestions and all(s.endswith(".") for s in kind.suggestions), kind.name
        assert kind.finding_kinds and set(kind.finding_kinds) <= set(FINDING_KINDS), kind.name
        assert type(kind).__module__ == f"rca.ranking.kinds.{kind.name}", "one module per kind, named after it"


def test_truth_maps_supporting_findings_to_their_kind():
    mapping = finding_to_hypothesis()
    for kind in all_kinds():
        assert all(mapping[fk] == kind.name for fk in kind.finding_kinds)
