"""The data part's baseline: data_chain's work as one eager polars script.

    python data_polars.py FILE.csv

Read; trim text; drop blank rows (every cell empty), incomplete rows (some cell empty) and
duplicates (the first copy stays, order kept); rename the columns to snake_case; describe.
"""

import re
import sys

import polars as pl

df = pl.read_csv(sys.argv[1])
text = [name for name, dtype in df.schema.items() if dtype == pl.String]
df = df.with_columns(pl.col(text).str.strip_chars().replace("", None))
blank = df.select(pl.all_horizontal(pl.all().is_null()).sum()).item()
df = df.drop_nulls()
rows = df.height
df = df.unique(maintain_order=True)
df = df.rename({name: re.sub(r"\W+", "_", name).strip("_").lower() for name in df.columns})
summary = df.describe()
print(f"{df.height} rows; dropped blank {blank}, duplicate {rows - df.height}; {summary.shape}")
