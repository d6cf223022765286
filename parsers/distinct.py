"""Work done once per distinct value of a column and gathered back, for columns whose values repeat.

A log repeats itself: its requests, levels and user agents recur thousands of times. A function of a
value (split a request line, normalize a level name) evaluated on the distinct values and gathered back
by code costs a hash a row and a few instructions more, where string work on every row costs hundreds
of nanoseconds. The codes are a categorical's, over categories made afresh for each call (freed with
them, where the global string cache would keep every value of a long log).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl


def by_distinct(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(codes, distinct): the distinct values of `values` (a String column) and, for each row, the
    index of its value among them (null for null), so `distinct.gather(codes)` is `values` again. The
    distinct values are taken at each code's first row: reading the categories back costs more than the
    cast when they are many."""
    codes = values.cast(pl.Categorical(pl.Categories.random())).to_physical()
    code = pl.col("code")
    firsts = pl.DataFrame({"code": codes, "value": values}).filter(code.is_first_distinct() & code.is_not_null()).sort("code")
    return codes, firsts.get_column("value").alias(values.name)


def per_distinct(values: pl.Series, function: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """`function(values)` (element-wise, as long as its input), evaluated once per distinct value of
    the String column `values`; a null value maps to what `function` makes of a null."""
    codes, distinct = by_distinct(values)
    mapped = function(pl.concat([distinct, pl.Series(values.name, [None], dtype=pl.String)]))
    return mapped.gather(codes.fill_null(len(distinct)))
