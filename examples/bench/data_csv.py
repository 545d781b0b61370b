"""The data part's CSV: a deterministic file of ROWS rows and 10 columns (about 70 MB at a
million rows), with a little dirt in it (padded cells, blank, incomplete and duplicate rows)."""

from __future__ import annotations

import random
from pathlib import Path

HEADER = "Order ID,Order Date,Region,Product,Quantity,Unit Price,Discount,Customer,Channel,Returned"
REGIONS = ("North", "South", "East", "West", "Central")
PRODUCTS = tuple(f"Product {letter}{n}" for letter in "ABCDEFGH" for n in range(1, 26))
CHANNELS = ("online", "store", "phone", "partner")


def generate(path: Path, rows: int, seed: int = 20240101) -> None:
    """The same file for the same rows and seed: 10 columns, ~1.4% of the rows dirty, in ways
    that polars' read_csv (the baseline) accepts too."""
    rng = random.Random(seed)
    recent: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write(HEADER + "\n")
        lines = []
        for i in range(rows):
            roll = rng.random()
            if roll < 0.001 and recent:
                line = rng.choice(recent)  # a duplicate of a recent row
            elif roll < 0.002:
                line = rng.choice(("", ",,,,,,,,,"))  # a blank row
            else:
                cells = [
                    str(100_000 + i),
                    f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    rng.choice(REGIONS),
                    rng.choice(PRODUCTS),
                    str(rng.randint(1, 50)),
                    f"{rng.randint(100, 99_999) / 100:.2f}",
                    rng.choice(("0", "0.05", "0.1", "0.15")),
                    f"C{rng.randint(1, 99_999):06d}",
                    rng.choice(CHANNELS),
                    rng.choice(("true", "false")),
                ]
                if roll < 0.004:
                    cells[rng.randrange(1, 10)] = ""  # an incomplete row
                elif roll < 0.014:
                    k = rng.choice((2, 3, 7, 8))  # text only: read_csv fails on " 1.5"
                    cells[k] = f"  {cells[k]} "  # whitespace to trim
                line = ",".join(cells)
                recent = [*recent[-99:], line]
            lines.append(line)
            if len(lines) == 100_000:
                file.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            file.write("\n".join(lines) + "\n")
