"""Tests of the score tables (moa.report)."""
from __future__ import annotations

import math
import pathlib

import pandas as pd
import pytest

from moa import report


def scores() -> dict[str, dict]:
    """score.json contents: a baseline, a model and an oracle, OOF and test (all rows, new and known drugs)."""
    def entry(oof_all, oof, test_all, test, new, known):
        return {"oof": {"all_rows": oof_all, "treated_rows": oof}, "test": {"all_rows": test_all, "treated_rows": test},
                "test_new": {"all_rows": new, "treated_rows": new}, "test_known": {"all_rows": known, "treated_rows": known}}
    return {
        "prior": entry(0.018, 0.02, 0.036, 0.04, 0.05, 0.03),
        "model": entry(0.014, 0.015, 0.027, 0.03, 0.04, 0.01),
        "oracle": entry(0.009, 0.01, 0.018, 0.02, 0.03, 0.02),
    }


# --- score_table ---------------------------------------------------------------------------------

def test_score_table_ratios_to_baseline_and_gap_closed():
    table = report.score_table(scores(), baseline="prior", oracle="oracle")

    assert list(table.index) == ["prior", "model", "oracle"]
    assert list(table.columns) == ["oof_all", "oof_treated", "test_all", "test_treated", "test_new", "test_known",
                                   "oof_treated/prior", "oof_treated gap closed", "test_all/prior",
                                   "test_new/prior", "test_new gap closed"]
    assert table.loc["model", "oof_all"] == 0.014
    assert table.loc["model", "test_treated"] == 0.03
    assert table.loc["model", "test_known"] == 0.01
    # 0.015 / 0.02 = 0.75; (0.02 - 0.015) / (0.02 - 0.01) = 0.5
    assert table.loc["model", "oof_treated/prior"] == pytest.approx(0.75)
    assert table.loc["model", "oof_treated gap closed"] == pytest.approx(0.5)
    # 0.027 / 0.036 = 0.75 over all test rows; on new drugs 0.04 / 0.05 = 0.8, (0.05 - 0.04) / (0.05 - 0.03) = 0.5
    assert table.loc["model", "test_all/prior"] == pytest.approx(0.75)
    assert table.loc["model", "test_new/prior"] == pytest.approx(0.8)
    assert table.loc["model", "test_new gap closed"] == pytest.approx(0.5)
    assert table.loc["prior", "oof_treated/prior"] == pytest.approx(1.0)
    assert table.loc["prior", "oof_treated gap closed"] == pytest.approx(0.0)
    assert table.loc["oracle", "oof_treated/prior"] == pytest.approx(0.5)
    assert table.loc["oracle", "oof_treated gap closed"] == pytest.approx(1.0)


def test_score_table_without_oracle_has_ratios_but_no_gap():
    table = report.score_table(scores(), baseline="prior")

    assert "oof_treated/prior" in table and "test_new/prior" in table
    assert not any("gap closed" in c for c in table.columns)


def test_score_table_without_baseline_has_only_scores():
    table = report.score_table(scores())

    assert list(table.columns) == ["oof_all", "oof_treated", "test_all", "test_treated", "test_new", "test_known"]


def test_score_table_drops_parts_nobody_has_and_leaves_nan_for_missing_ones():
    only_oof = {name: {"oof": s["oof"]} for name, s in scores().items()}
    assert list(report.score_table(only_oof, baseline="prior")) == ["oof_all", "oof_treated", "oof_treated/prior"]

    mixed = scores()
    del mixed["model"]["test"]
    table = report.score_table(mixed, baseline="prior")
    assert math.isnan(table.loc["model", "test_treated"])
    assert math.isnan(table.loc["model", "test_all/prior"])
    assert table.loc["oracle", "test_all/prior"] == pytest.approx(0.5)


# --- to_markdown ---------------------------------------------------------------------------------

def test_to_markdown_lines():
    table = pd.DataFrame({"loss": [0.0123456, math.nan], "ratio": [1.0, 0.75]},
                         index=pd.Index(["prior", "mlp"], name="name"))

    assert report.to_markdown(table, digits=3) == (
        "| name | loss | ratio |\n"
        "|---|---|---|\n"
        "| prior | 0.012 | 1.000 |\n"
        "| mlp |  | 0.750 |\n"
    )


def test_to_markdown_keeps_an_integer_column_whole_beside_floats():
    table = pd.DataFrame({"runs": [3, 5], "spread": [0.25, 0.5]}, index=pd.Index(["a", "b"], name="model"))
    assert report.to_markdown(table, digits=2).splitlines()[2:] == ["| a | 3 | 0.25 |", "| b | 5 | 0.50 |"]


def test_to_markdown_of_a_score_table_has_one_line_per_entry():
    table = report.score_table(scores(), baseline="prior", oracle="oracle")

    lines = report.to_markdown(table).splitlines()

    assert len(lines) == 2 + 3
    assert lines[0] == "| name | " + " | ".join(table.columns) + " |"
    assert lines[1] == "|" + "---|" * 12
    assert lines[3] == ("| model | 0.01400 | 0.01500 | 0.02700 | 0.03000 | 0.04000 | 0.01000 | 0.75000 | 0.50000 "
                        "| 0.75000 | 0.80000 | 0.50000 |")


# --- write_summary -------------------------------------------------------------------------------

def test_write_summary_writes_title_and_table(tmp_path):
    table = report.score_table(scores(), baseline="prior", oracle="oracle")
    path = tmp_path / "report" / "summary.md"

    text = report.write_summary(table, path, title="my run")

    assert path.read_text() == text
    assert text.startswith("# my run\n\n")
    assert text.endswith(report.to_markdown(table))
    assert [p.name for p in path.parent.iterdir()] == ["summary.md"]   # no temporary file left


def test_write_summary_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "summary.md"
    path.write_text("previous summary\n")
    table = report.score_table(scores())

    def partial_then_fail(self, data, *args, **kwargs):
        with open(self, "w") as handle:
            handle.write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", partial_then_fail)
    with pytest.raises(OSError, match="disk full"):
        report.write_summary(table, path)
    monkeypatch.undo()

    assert path.read_text() == "previous summary\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_member_table_puts_each_weight_beside_the_member_scores_in_blend_order():
    table = report.member_table(scores(), {"model": 0.75, "prior": 0.25})
    assert list(table.index) == ["model", "prior"]
    assert table.index.name == "member"
    assert list(table.columns[:3]) == ["weight", "oof_all", "oof_treated"]
    assert table.loc["prior", "weight"] == 0.25 and table.loc["model", "oof_treated"] == 0.015


def test_member_table_with_references_adds_ratios_and_the_oracle_row_but_not_a_non_member_baseline():
    table = report.member_table(scores(), {"model": 1.0}, baseline="prior", oracle="oracle")
    assert list(table.index) == ["model", "oracle"]
    assert table.loc["model", "oof_treated gap closed"] == pytest.approx(0.5)
    assert table.loc["model", "oof_treated/prior"] == pytest.approx(0.75)
    assert math.isnan(table.loc["oracle", "weight"])


def test_write_summary_appends_sections_under_headings(tmp_path):
    table = report.score_table(scores(), baseline="prior")
    text = report.write_summary(table, tmp_path / "summary.md", sections={"Weights": "| a |\n", "Other": "x\n"})
    assert text.endswith(report.to_markdown(table) + "\n## Weights\n\n| a |\n\n## Other\n\nx\n")


def test_html_table_page_holds_the_values(tmp_path):
    table = report.score_table(scores(), baseline="prior")
    report.write_html_table(table, tmp_path / "t.html", "Scores", digits=3)
    page = (tmp_path / "t.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h3>Scores</h3>" in page
    assert "<td>0.015</td>" in page and "<th>model</th>" in page


def test_figures_are_pngs_even_with_undefined_correlations_and_a_failing_model(tmp_path):
    from moa import plots

    matrix = pd.DataFrame([[1.0, math.nan], [math.nan, 1.0]], index=["a", "b"], columns=["a", "b"])
    plots.heatmap(matrix, tmp_path / "heat.png", "title")
    table = report.score_table({**scores(), "broken": {"oof": {"treated_rows": 0.7}, "test": {"treated_rows": 0.7}}},
                               baseline="prior", oracle="oracle")
    plots.score_chart(table, tmp_path / "scores.png", baseline="prior", oracle="oracle")
    history = pd.DataFrame({"epoch": [0, 1], "train_loss": [0.5, 0.1], "valid_loss": [0.4, 0.2], "lr": [0.01, 0.0]})
    plots.learning_curves({"seed 0 fold 0": history}, tmp_path / "curves.png", "title")
    for name in ["heat.png", "scores.png", "curves.png"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "heat.png", "scores.png"]


def test_the_score_chart_plots_ratios_to_the_prior_on_an_axis_fitted_to_them(tmp_path):
    from moa import plots

    table = pd.DataFrame({"oof_treated": [0.020, 0.0150, 0.0155, 0.0120, 0.7],
                          "test_new": [0.021, 0.0170, 0.0160, 0.0130, 0.7]},
                         index=["prior", "mlp", "blend", "oracle", "broken"])
    low, high = plots.score_chart(table, tmp_path / "scores.png", baseline="prior", oracle="oracle")
    # the oracle's 0.6 and the prior's 1.0 bound the axis, padded by 6% of the span; the broken model
    # (35x the prior) is drawn at the 1.5 cap instead of stretching the axis
    span = plots.RATIO_CAP - 0.6
    assert (low, high) == pytest.approx((0.6 - 0.06 * span, plots.RATIO_CAP + 0.06 * span))
    low, high = plots.score_chart(table.drop("broken"), tmp_path / "scores.png", baseline="prior", oracle="oracle")
    assert (low, high) == pytest.approx((0.6 - 0.024, 1.0 + 0.024))
    assert (tmp_path / "scores.png").read_bytes()[:4] == b"\x89PNG"
