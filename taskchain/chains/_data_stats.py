"""analyze's statistics: the aggregates per column, and their values as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

#: Rows read to find a value of each integer column (see `origins`).
HEAD_ROWS = 10_000


def origins(typed: pl.LazyFrame, column: dict[str, str], dtypes: pl.Schema) -> dict[str, int]:
    """A value of each integer column from its first rows (0 for none): mean and std are
    taken of the distances from it. A float holds ids like 12345678901234567890..92 only
    to the nearest 2048, so their std would come out 0; their distances it holds exactly."""
    import polars as pl

    integer = {c: v for c, v in column.items() if dtypes[v].is_integer()}
    if not integer:
        return {}
    head = typed.head(HEAD_ROWS).select(
        pl.col(v).drop_nulls().first().alias(c) for c, v in integer.items()
    )
    row = head.collect().row(0, named=True)
    return {c: int(v or 0) for c, v in row.items()}


def statistics(column: dict[str, str], dtypes: pl.Schema, origin: dict[str, int]) -> list[pl.Expr]:
    import polars as pl

    exprs = [pl.len().alias("rows")]
    for i, (name, value) in enumerate((c, pl.col(v)) for c, v in column.items()):
        dtype = dtypes[value.meta.output_name()]
        exprs += [value.count().alias(f"{i}:count"), value.null_count().alias(f"{i}:nulls")]
        if dtype.is_numeric() or dtype.is_temporal():
            exprs += [value.min().alias(f"{i}:min"), value.max().alias(f"{i}:max")]
        if dtype.is_numeric():
            if name in origin:  # Int128: no overflow from an Int64 minus an Int64
                value = value.cast(pl.Int128) - pl.lit(origin[name], dtype=pl.Int128)
            exprs += [value.mean().alias(f"{i}:mean"), value.std().alias(f"{i}:std")]
    return exprs


def json_value(value: Any) -> Any:
    """Dates as ISO text; NaN and infinities (which JSON cannot hold) as null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
