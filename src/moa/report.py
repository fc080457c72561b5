"""Score tables for the terminal and the report."""
from __future__ import annotations

import math

import pandas as pd

from moa import io

COLUMNS = {"oof_all": ("oof", "all_rows"), "oof_treated": ("oof", "treated_rows"),
           "oof_treated_cross_validated": ("oof_cross_validated", "treated_rows"),
           "test_all": ("test", "all_rows"), "test_treated": ("test", "treated_rows"),
           "test_new": ("test_new", "treated_rows"), "test_known": ("test_known", "treated_rows")}
# Where the oracle is the Bayes floor: OOF rows, and test rows of drugs never seen in training. On a known
# drug's test rows a model may recognise the drug and beat the oracle, so no gap is closed there.
GAP_COLUMNS = ("oof_treated", "test_new")


def score_table(scores: dict[str, dict], baseline: str | None = None, oracle: str | None = None) -> pd.DataFrame:
    """One row per entry of `scores` (name -> score.json content), with ratios to a baseline and, when an
    oracle is given, the share of the baseline-to-oracle gap each entry closes (OOF and new-drug test rows,
    treated rows only). `test_new` and `test_known` are log losses on the treated test rows of new and of
    known (train) drugs."""
    rows = []
    for name, score in scores.items():
        row = {"name": name}
        for column, (part, key) in COLUMNS.items():
            row[column] = score.get(part, {}).get(key, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("name")
    table = table.dropna(axis=1, how="all")
    for part in ("oof_treated", "test_all", "test_new"):
        if baseline in table.index and part in table:
            table[f"{part}/{baseline}"] = table[part] / table.loc[baseline, part]
            if oracle in table.index and part in GAP_COLUMNS:
                gap = table.loc[baseline, part] - table.loc[oracle, part]
                table[f"{part} gap closed"] = (table.loc[baseline, part] - table[part]) / gap
    return table


def to_markdown(table: pd.DataFrame, digits: int = 5) -> str:
    header = [table.index.name or "", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # by column, not by row: a row of ints and floats would come out as floats
    for name, *row in table.itertuples(name=None):
        cells = ["" if pd.isna(v) else f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines) + "\n"


HTML_STYLE = ("body{font-family:sans-serif;font-size:14px;margin:1em}"
              "table{border-collapse:collapse}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}"
              "th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid #444}")


def write_html_table(table: pd.DataFrame, path, title: str, digits: int = 5) -> None:
    """A standalone HTML page holding `table`, for the Snakemake report (which does not render CSV)."""
    body = table.to_html(float_format=lambda v: f"{v:.{digits}f}", na_rep="", border=0)
    text = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{HTML_STYLE}</style></head><body><h3>{title}</h3>{body}</body></html>\n")
    with io.atomic_path(path) as tmp:
        tmp.write_text(text)


def member_table(scores: dict[str, dict], weights: dict[str, float], baseline: str | None = None,
                 oracle: str | None = None) -> pd.DataFrame:
    """Each blend member's blend weight beside its own scores (and, given them, its ratio to the baseline
    and share of the baseline-to-oracle gap closed, with the oracle's row last)."""
    references = [n for n in (baseline, oracle) if n in scores and n not in weights]
    table = score_table({n: scores[n] for n in [*weights, *references]}, baseline=baseline, oracle=oracle)
    table = table.drop(index=[n for n in references if n != oracle])
    table.insert(0, "weight", [weights.get(n, math.nan) for n in table.index])
    return table.rename_axis("member")


def write_summary(table: pd.DataFrame, path, title: str = "moa results", sections: dict[str, str] | None = None) -> str:
    """The score table, then each of `sections` (heading -> markdown) under its heading."""
    text = (f"# {title}\n\nLog loss (mean column-wise binary log loss; `all` = every row with controls "
            f"predicted 0, `treated` = trt_cp rows only; `oof` = out-of-fold on train, `test` = held-out "
            f"synthetic test rows, when their truth is known).\n\n" + to_markdown(table))
    for heading, body in (sections or {}).items():
        text += f"\n## {heading}\n\n{body}"
    with io.atomic_path(path) as tmp:
        tmp.write_text(text)
    return text
