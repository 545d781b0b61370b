"""The data part's baseline: data_chain's work as one eager polars script.

    python data_polars.py FILE.csv [--write DIR] [--cli]

Read; trim text; drop blank rows (every cell empty), incomplete rows (some cell empty) and
duplicates (the first copy stays, order kept); rename the columns to snake_case; describe.

`--write DIR` (a reference, not the target's baseline): also write the two tables that
data_chain's contract makes it keep, the cleaned table and the renamed one, as Parquet files
in DIR, the way data_chain writes tables of this size (uncompressed), so that the cost of
those files shows apart from the rest of the work.

`--cli` (with `--write`, the data part's floor): first import what any command that records
a chain in a SQL store loads (typer, rich, sqlmodel, pydantic-settings: issue 10's floor for
an embedded `submit`). The script then does the least that data_chain's contract asks of any
implementation, if the rest of it were as fast as polars' own reading and describing.
"""

import re
import sys

if "--cli" in sys.argv:
    import pydantic_settings  # noqa: F401
    import rich  # noqa: F401
    import sqlmodel  # noqa: F401
    import typer  # noqa: F401

import polars as pl

out = sys.argv[sys.argv.index("--write") + 1] if "--write" in sys.argv else None
df = pl.read_csv(sys.argv[1])
text = [name for name, dtype in df.schema.items() if dtype == pl.String]
df = df.with_columns(pl.col(text).str.strip_chars().replace("", None))
blank = df.select(pl.all_horizontal(pl.all().is_null()).sum()).item()
df = df.drop_nulls()
rows = df.height
df = df.unique(maintain_order=True)
if out:
    df.write_parquet(f"{out}/clean.parquet", compression="uncompressed", row_group_size=16384)
df = df.rename({name: re.sub(r"\W+", "_", name).strip("_").lower() for name in df.columns})
if out:
    df.write_parquet(f"{out}/renamed.parquet", compression="uncompressed", row_group_size=16384)
summary = df.describe()
print(f"{df.height} rows; dropped blank {blank}, duplicate {rows - df.height}; {summary.shape}")
