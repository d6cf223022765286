"""`json_arrays.ArrayBatches` cuts a document's array into runs of whole elements however its bytes come:
the runs, parsed, are the array's elements (strings with quotes, escapes and brackets included)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.parsers.json_arrays import ArrayBatches

TEXT = st.text(alphabet='ab"\\[]{},: \n\té', max_size=12)
VALUES = st.recursive(st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | TEXT,
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(items=st.lists(VALUES, max_size=20), envelope=st.booleans(), indent=st.booleans(),
       cuts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20))
def test_runs_of_elements_are_the_arrays_elements(items, envelope, indent, cuts):
    document = {"data": items, "total": [1, {"x": "]"}]} if envelope else items
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 if indent else 0)
    batches = ArrayBatches(1 if envelope else 0)
    got, position, k = [], 0, 0
    while position < len(data):
        size = cuts[k % len(cuts)]
        for run in batches.feed(data[position : position + size]):
            got += orjson.loads(run)
        position, k = position + size, k + 1
    assert got == items and batches.ended
