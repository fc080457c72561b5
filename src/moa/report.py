"""Score tables for the terminal and the report."""
from __future__ import annotations

import math

import pandas as pd

from moa import io

COLUMNS = {"oof_all": ("oof", "all_rows"), "oof_treated": ("oof", "treated_rows"),
           "test_all": ("test", "all_rows"), "test_treated": ("test", "treated_rows")}


def score_table(scores: dict[str, dict], baseline: str | None = None, oracle: str | None = None) -> pd.DataFrame:
    """One row per entry of `scores` (name -> score.json content), with ratios to a baseline and,
    when an oracle is given, the share of the baseline-to-oracle gap each entry closes (OOF, treated)."""
    rows = []
    for name, score in scores.items():
        row = {"name": name}
        for column, (part, key) in COLUMNS.items():
            row[column] = score.get(part, {}).get(key, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("name")
    table = table.dropna(axis=1, how="all")
    for part in ("oof_treated", "test_treated"):
        if baseline in table.index and part in table:
            table[f"{part}/{baseline}"] = table[part] / table.loc[baseline, part]
            if oracle in table.index:
                gap = table.loc[baseline, part] - table.loc[oracle, part]
                table[f"{part} gap closed"] = (table.loc[baseline, part] - table[part]) / gap
    return table


def to_markdown(table: pd.DataFrame, digits: int = 5) -> str:
    header = [table.index.name or "", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_summary(table: pd.DataFrame, path, title: str = "moa results") -> str:
    text = (f"# {title}\n\nLog loss (mean column-wise binary log loss; `all` = every row with controls "
            f"predicted 0, `treated` = trt_cp rows only; `oof` = out-of-fold on train, `test` = held-out "
            f"synthetic test rows, when their truth is known).\n\n" + to_markdown(table))
    with io.atomic_path(path) as tmp:
        tmp.write_text(text)
    return text
