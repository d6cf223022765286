"""JSON lines: the chunked fast path (each chunk read with the schema of its first lines and of the
chunks before, checked by counting its keys in the bytes; mapped chunk by chunk) gives the frames of
the per-line path (orjson, a dict per line) on generated input of any shape: unicode, escaped quotes,
`":` inside strings, nested objects, keys that appear late, types that change, plain-text and broken
lines among the records."""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from rca.parsers import ParseOptions
from rca.parsers import fields as fields_module
from rca.parsers import lines as lines_module
from rca.parsers.fields import key_counts, object_keys
from rca.parsers.jsonl import JsonLinesParser
from rca.parsers.sources import Source

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
TRICKY = st.sampled_from(['a "quoted" word', 'ends in \\', '"k":1', '\\":', "é ü 日本 🚀", "tab\there", "x\\\\", "{not json}", "[1, 2]", ""])
# Booleans only under a key of their own: a key holding true in one line and a number in another is read
# by polars as numbers (true as 1), the per-line path keeps true, a leniency of the vectorized reader.
SCALAR = st.one_of(TEXT, TRICKY, st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False, width=32))
CANONICAL_KEYS = ["ts", "time", "@timestamp", "level", "severity", "msg", "message", "service", "service.name", "host", "version",
                  "service.version", "route", "path", "url.path", "method", "status", "duration_ms", "latency", "user_id", "trace_id"]
OTHER_KEYS = ["attempt", "err", "stack", "tags", "ctx", "ünïcode", 'q"uote', "sp ace", 'back\\slash', "ts.x"]
# Objects nest at any depth (flattened to dotted keys); lists hold scalars of one JSON type: a list mixing
# types or holding objects is kept as JSON text by either path, but polars and orjson spell it differently
# (numbers as text, object keys unsorted), a leniency the per-line path's tests allow for already.
LIST = st.one_of(st.lists(TEXT, max_size=3), st.lists(st.integers(-1000, 1000), max_size=3))
# An empty object only under a key of its own: where a key holds `{}` in one line and fields in another,
# the reader gives `{}` null fields (no attribute), the per-line path keeps `{}`.
VALUE = st.recursive(st.one_of(SCALAR, LIST), lambda inner: st.dictionaries(st.sampled_from(CANONICAL_KEYS + OTHER_KEYS), inner, min_size=1, max_size=3),
                     max_leaves=6)
# A float or a boolean under a canonical text field is spelled by the type of its column: `999` and `true`
# where a chunk holds only integers or booleans, `999.0` and `1` where the per-line path's column of the
# whole input holds floats or integers too; not drawn.
CANONICAL_VALUE = st.one_of(TEXT, TRICKY, st.integers(-(2**53), 2**53))
EXTRA = st.tuples(st.dictionaries(st.sampled_from(OTHER_KEYS), VALUE, max_size=3), st.dictionaries(st.sampled_from(CANONICAL_KEYS), CANONICAL_VALUE, max_size=2))
STAMP = st.one_of(
    st.integers(1_767_000_000, 1_768_000_000),
    st.integers(1_767_000_000_000, 1_768_000_000_000),
    st.integers(1_767_000_000, 1_768_000_000).map(lambda s: f"2026-01-{1 + s % 28:02d}T10:{s % 60:02d}:{s % 59:02d}.{s % 1000:03d}Z"),
    st.integers(0, 10**6).map(lambda s: f"2026-01-06 10:{s % 60:02d}:00+01:00"),
)
RECORD = st.fixed_dictionaries(
    {"ts": STAMP},
    optional={"ok": st.booleans(), "empty": st.just({}), "level": st.sampled_from(["info", "WARN", "error", 30, 50, "3"]), "msg": st.one_of(TEXT, TRICKY),
              "service": st.sampled_from(["api", "users", "billing"]), "route": st.sampled_from(["/api/u/{id}", "/health"]),
              "status": st.sampled_from([200, 503, "404"]), "duration_ms": st.floats(0, 5000, allow_nan=False), "http": st.fixed_dictionaries({"method": st.sampled_from(["get", "POST"])})},
).flatmap(lambda base: EXTRA.map(lambda extra: {**extra[0], **extra[1], **base}))
SEPARATORS = [(",", ":"), (", ", ": "), (",", ": ")]
LINE = st.one_of(
    st.tuples(RECORD, st.sampled_from(range(len(SEPARATORS)))).map(lambda r: json.dumps(r[0], ensure_ascii=False, separators=SEPARATORS[r[1]])),
    st.sampled_from(["Traceback (most recent call last):", '  File "app.py", line 3, in <module>', "", '{"ts": "2026-01-06T10:00:00Z", "msg": "cut',
                     "[1, 2, 3]", "plain text from the same stream"]),
)


def _spelled(value: Any) -> str:
    """A value as text, numbers spelled one way: a key holding integers and floats is read as floats,
    one holding numbers and text as text."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 2**63 else repr(number)
    return orjson.dumps(value).decode()


def _without_nulls(attributes: Any) -> list:
    """Attribute objects, null values left out and every value as JSON text (strings bare): a key's
    JSON type may vary between lines (read as text) and a null is no value to a column."""
    out = []
    for text in attributes.to_list():
        value = orjson.loads(text) if text else None
        value = value and {k: _spelled(v) for k, v in value.items() if v is not None}
        out.append(value or None)
    return out


def _same(fast, slow) -> None:
    for name, frame in slow.frames.items():
        other = fast.frames[name]
        if "attributes" in frame.columns:
            assert _without_nulls(other["attributes"]) == _without_nulls(frame["attributes"])
            frame, other = frame.drop("attributes"), other.drop("attributes")
        assert_frame_equal(other, frame, check_column_order=True)
    assert (fast.rejected, fast.rejected_examples, fast.lines, fast.warnings) == (slow.rejected, slow.rejected_examples, slow.lines, slow.warnings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=40), chunk=st.sampled_from([300, 900, 1 << 20]), sample=st.sampled_from([1, 3, 100]),
       batch=st.sampled_from([(8, 2), (50_000, 1_000)]))
@example(lines=['{"ts":1767693600,"msg":"a"}', '{"ts":1767693601,"msg":"b","late":{"x":1}}', '{"ts":1767693602,"late":{"x":2,"y":"z"}}'], chunk=1 << 20, sample=1, batch=(50_000, 1_000))
@example(lines=['{"ts":1767693600,"a":"q\\":1"}', '{"ts":1767693600, "b" :2}', '{"ts":1767693600,"k\\\\":1}'], chunk=1 << 20, sample=1, batch=(50_000, 1_000))
def test_fast_path_equals_the_per_line_path(monkeypatch, lines, chunk, sample, batch):
    monkeypatch.setattr(lines_module, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(fields_module, "JSON_BATCH_LINES", batch[0])  # lines decoded at a time when a chunk holds text lines
    monkeypatch.setattr(fields_module, "PER_RECORD_LINES", batch[1])
    monkeypatch.setattr(fields_module, "SAMPLE_LINES", sample)
    if not any(line.startswith("{") for line in lines):
        lines = ['{"ts": 1767693600, "msg": "first"}', *lines]
    while lines[-1] == "":  # a blank last line: counted by the chunked reader, not by the per-line one (as before)
        lines.pop()
    source = Source(origin="app.jsonl", data=("\n".join(lines) + "\n").encode())
    parser = JsonLinesParser()
    _same(parser.parse(source, ParseOptions()), parser.parse_per_record(source, ParseOptions()))


def test_every_chunk_of_a_clean_log_is_read_in_one_pass(monkeypatch):
    """A key first seen after a chunk's first lines (an `err` object on a few lines) is found by the
    byte count; once a chunk has held it, the chunks after are read in one pass with it. The frames
    match the per-line path's."""
    monkeypatch.setattr(lines_module, "CHUNK_BYTES", 4_000)
    monkeypatch.setattr(fields_module, "SAMPLE_LINES", 5)
    one_pass = fields_module._read_with_known_schema
    outcomes: list[bool] = []

    def spy(chunk, seen):
        decoded = one_pass(chunk, seen)
        outcomes.append(decoded is not None)
        return decoded

    monkeypatch.setattr(fields_module, "_read_with_known_schema", spy)
    records = []
    for i in range(600):
        record: dict[str, Any] = {"ts": 1_767_693_600 + i, "level": "info", "msg": f'done "{i}" \\ é', "route": "/a", "status": 200}
        if i % 37 == 5:
            record = {"ts": record["ts"], "level": "error", "msg": "timed out", "err": {"kind": "timeout", "retries": i % 3}, "stack": None}
        records.append(orjson.dumps(record).decode())
    source = Source(origin="app.jsonl", data=("\n".join(records) + "\n").encode())
    fast = JsonLinesParser().parse(source, ParseOptions())
    assert fast.slow_lines == 0
    _same(fast, JsonLinesParser().parse_per_record(source, ParseOptions()))
    assert fast.frames["events"].height == sum(1 for i in range(600) if i % 37 == 5)
    assert len(outcomes) > 10 and sum(not ok for ok in outcomes) <= 2  # the first chunks holding `err`


def _one_pass_outcomes(monkeypatch) -> list[bool]:
    """Whether each chunk was read in one pass (`_read_with_known_schema` kept its frame)."""
    one_pass = fields_module._read_with_known_schema
    outcomes: list[bool] = []

    def spy(chunk, seen):
        decoded = one_pass(chunk, seen)
        outcomes.append(decoded is not None)
        return decoded

    monkeypatch.setattr(fields_module, "_read_with_known_schema", spy)
    return outcomes


def test_a_key_null_in_a_chunks_first_lines_keeps_the_type_it_had():
    """A key null in every one of a chunk's first lines (a system that logs no pid for a while) says
    nothing of its type: the chunk is read in one pass with the type earlier chunks gave it (it used to
    drop the key, miss the byte count and read every chunk twice). The frames match the per-line path's."""
    records = []
    for i in range(400):
        pid = None if 80 <= i % 200 < 125 else f"{1000 + i % 7}"  # null over the first lines of every other chunk
        records.append(orjson.dumps({"ts": 1_767_693_600 + i, "level": "info", "msg": f"m {i}", "pid": pid}).decode())
    source = Source(origin="app.jsonl", data=("\n".join(records) + "\n").encode())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lines_module, "CHUNK_BYTES", 100 * len(records[0]))
        patch.setattr(fields_module, "SAMPLE_LINES", 5)
        patch.setattr(fields_module, "map_chunks", functools.partial(lines_module.map_chunks, workers=1))  # each chunk after the one before
        outcomes = _one_pass_outcomes(patch)
        fast = JsonLinesParser().parse(source, ParseOptions())
    assert len(outcomes) >= 3 and all(outcomes)
    _same(fast, JsonLinesParser().parse_per_record(source, ParseOptions()))
    assert fast.frames["events"].get_column("attributes").str.contains('"pid"').sum() == sum(1 for r in records if '"pid":"' in r)


def test_numbers_under_a_key_known_as_text_are_read_as_numbers(monkeypatch):
    """A key earlier chunks held as text, absent from a chunk's first lines and holding numbers further on,
    would be read as text with the known schema; the count of string values in the bytes catches it and
    the chunk is read with its own schema (the numbers stay numbers, as a read of those lines alone gives)."""
    monkeypatch.setattr(fields_module, "SAMPLE_LINES", 3)
    lines = [orjson.dumps({"ts": 1_767_693_700 + i, "msg": "b", **({"pid": 7} if i > 5 else {})}).decode() for i in range(20)]
    chunk = lines_module.LineChunk(("\n".join(lines) + "\n").encode(), first_line=41, lines=len(lines), read=0, total=0)
    seen = fields_module._SeenKeys()
    seen.add(pl.Schema({"ts": pl.Int64(), "msg": pl.String(), "pid": pl.String()}))
    assert fields_module._read_with_known_schema(chunk, seen) is None
    flat = fields_module._whole_chunk(chunk, seen)
    assert flat is not None and flat.schema["pid"] == pl.Int64
    assert flat.get_column(fields_module.LINE).to_list() == list(range(41, 61))


ATTRIBUTE_VALUE = st.one_of(st.none(), TEXT, TRICKY, st.sampled_from(['"k":null', ',"k":null}', "{}", "null"]), st.integers(-1000, 1000), st.booleans(),
                            st.floats(allow_nan=False, allow_infinity=False, width=32))


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(ATTRIBUTE_VALUE, ATTRIBUTE_VALUE, ATTRIBUTE_VALUE), min_size=1, max_size=6),
       keys=st.sampled_from([["a", "k", "z"], ["k", "k.x", "x-y"], ["a", 'q"uote', "k"], ["back\\slash", "k", "ünïcode"]]),
       types=st.sampled_from(["mixed", "text"]))
def test_attributes_encoded_at_once_equal_the_fragments_joined(rows, keys, types):
    """`_attributes` (one object a row, null fields cut out of the text) gives `_attributes_expr`'s text
    exactly, for values that spell `"k":null` themselves, keys JSON escapes, and columns of any type."""
    columns = list(zip(*rows, strict=True))
    if types == "text":
        columns = [[None if v is None else str(v) for v in column] for column in columns]
    frame = pl.DataFrame({key: pl.Series(key, column, strict=False) if types == "mixed" and len({type(v) for v in column if v is not None}) <= 1
                          else pl.Series(key, [None if v is None else str(v) for v in column], dtype=pl.String) for key, column in zip(keys, columns, strict=True)})
    expected = frame.select(fields_module._attributes_expr(keys)).to_series()
    assert fields_module._attributes(frame, keys).to_list() == expected.to_list()


def _keys(value: Any) -> int:
    if isinstance(value, dict):
        return sum((v is not None) + _keys(v) for v in value.values())
    if isinstance(value, list):
        return sum(_keys(v) for v in value)
    return 0


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.dictionaries(st.sampled_from(CANONICAL_KEYS + OTHER_KEYS), VALUE | st.none() | st.lists(VALUE), max_size=5), min_size=1, max_size=8),
       separators=st.sampled_from(SEPARATORS))
def test_object_keys_counts_the_keys_or_declines(values, separators):
    data = "".join(json.dumps(v, ensure_ascii=False, separators=separators) + "\n" for v in values).encode()
    counted = object_keys(data)
    assert counted is None or counted == sum(_keys(v) for v in values)
    counts = key_counts(data)
    assert counts is None or counts == (counted, sum(_nested(v) for v in values), sum(_strings(v) for v in values))


def _nested(value: Any) -> int:
    """Objects and lists held by a key, at any depth."""
    if isinstance(value, dict):
        return sum(isinstance(v, dict | list) + _nested(v) for v in value.values())
    if isinstance(value, list):
        return sum(_nested(v) for v in value)
    return 0


def _strings(value: Any) -> int:
    """Strings held by a key, at any depth."""
    if isinstance(value, dict):
        return sum(isinstance(v, str) + _strings(v) for v in value.values())
    if isinstance(value, list):
        return sum(_strings(v) for v in value)
    return 0


def test_text_that_starts_like_json_keeps_its_chunk_on_the_fast_path():
    """Log messages such as `[INFO] ...` or `{not json}` are strings: the chunk is read at once, and
    gives the per-line path's frames. An object among scalars under one key still goes record by record."""
    lines = [orjson.dumps({"ts": 1_767_693_600 + i, "msg": ["[INFO] started", "{not json}", "[1, 2]", "plain"][i % 4], "level": "info"}).decode()
             for i in range(200)]
    source = Source(origin="app.jsonl", data=("\n".join(lines) + "\n").encode())
    fast = JsonLinesParser().parse(source, ParseOptions())
    assert fast.slow_lines == 0
    _same(fast, JsonLinesParser().parse_per_record(source, ParseOptions()))
    mixed = [*lines[:3], '{"ts": 1767693700, "msg": {"text": "an object"}}']
    source = Source(origin="app.jsonl", data=("\n".join(mixed) + "\n").encode())
    _same(JsonLinesParser().parse(source, ParseOptions()), JsonLinesParser().parse_per_record(source, ParseOptions()))


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a":1,"b":{"c":null}}\n', 2),
    ('{"a": "x\\": y", "b": null}\n', 1),  # `":` inside a string is escaped; a null is no value
    ('{"client":"::1","a":":"}\n', 2),  # a string value opening with a colon
    ('{"a" : 1, "b"\t:\t[":x", "y\\\\"]}\n', 2),  # whitespace around colons, a string ending in a backslash
    ('{"a\\\\":1}\n', 1),  # a key ending in a backslash
    ('{"a":[{"b":1}]}\n', 2),
])
def test_object_keys_examples(text, expected):
    assert object_keys(text.encode()) == expected
