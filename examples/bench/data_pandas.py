"""The data part's pandas side: the same work as data_polars.py, in pandas.

python data_pandas.py FILE.csv
"""

import re
import sys

import pandas as pd

df = pd.read_csv(sys.argv[1])
for name in df.columns:
    if pd.api.types.is_string_dtype(df[name]):
        trimmed = df[name].str.strip()
        df[name] = trimmed.mask(trimmed == "")
blank = int(df.isna().all(axis=1).sum())
df = df.dropna()
rows = len(df)
df = df.drop_duplicates()
df = df.rename(columns={name: re.sub(r"\W+", "_", name).strip("_").lower() for name in df.columns})
summary = df.describe(include="all")
print(f"{len(df)} rows; dropped blank {blank}, duplicate {rows - len(df)}; {summary.shape}")
