from datetime import UTC, datetime

import polars as pl

from rca.model import FRAMES, SCHEMAS, TS, Dataset, conform, empty_frame


def test_every_frame_has_ts_origin_line_signal():
    for name in FRAMES:
        schema = SCHEMAS[name]
        for col in ("origin", "line", "signal"):
            assert col in schema, (name, col)
        assert schema.get("ts") == TS


def test_conform_adds_missing_casts_and_orders():
    frame = pl.DataFrame({"status": ["200", "oops"], "extra": [1, 2], "path": ["/a", "/b"]})
    out = conform(frame, "requests")
    assert out.columns == list(SCHEMAS["requests"])
    assert out["status"].to_list() == [200, None]
    assert out["ts"].null_count() == 2


def test_dataset_time_range_spans_frames():
    data = Dataset()
    assert data.time_range() is None
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = datetime(2026, 1, 2, tzinfo=UTC)
    data.requests = conform(pl.DataFrame({"ts": [t1]}), "requests")
    data.events = conform(pl.DataFrame({"ts": [t0]}), "events")
    assert data.time_range() == (t0, t1)
    assert empty_frame("spans").height == 0


def test_conform_of_a_frame_without_columns_has_no_rows():
    assert conform(pl.DataFrame(), "changes").height == 0
    assert conform(pl.DataFrame().lazy(), "changes").collect().height == 0
