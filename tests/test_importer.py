"""Tests for `moa.importer.import_raw` and the checks of `moa.validation`, on a tiny hand-made data set."""
from __future__ import annotations

import functools
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moa.importer import RawDataWarning, import_raw, permuted_labels
from moa.schema import DataError

# Deliberately unsorted, so that the tests see the importer sort them.
TRAIN_IDS = ["id_0f3", "id_0a1", "id_0c7", "id_0b2", "id_0e5", "id_0d4", "id_0a9", "id_0c0"]
TEST_IDS = ["id_1b0", "id_1a0", "id_1c0"]
CONTROL_ROW = 2
# Kaggle order is not alphabetical; the importer must keep it.
SCORED = ["tgt_beta_agonist", "tgt_alpha_inhibitor", "tgt_gamma_blocker"]
NONSCORED = ["ns_zeta", "ns_eta"]
# Eleven genes, so that sorting by name (g-10 before g-2) and by index differ.
GENES = [f"g-{i}" for i in range(11)]
CELLS = ["c-0", "c-1"]
FEATURE_COLUMNS = ["sig_id", "cp_type", "cp_time", "cp_dose", *GENES, *CELLS]
OUTPUTS = {
    "train_features",
    "test_features",
    "train_targets_scored",
    "train_targets_nonscored",
    "train_drug",
    "sample_submission",
}
REQUIRED_FILES = sorted(OUTPUTS - {"train_drug"})

Tables = dict[str, pd.DataFrame]


def make_features(ids: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sig_id": ids,
            "cp_type": "trt_cp",
            "cp_time": [(24, 48, 72)[i % 3] for i in range(len(ids))],
            "cp_dose": [("D1", "D2")[i % 2] for i in range(len(ids))],
        }
    )
    for column in GENES + CELLS:
        frame[column] = rng.normal(size=len(ids)).round(4)
    return frame


def make_targets(ids: list[str], names: list[str], seed: int, controls: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"sig_id": ids})
    for name in names:
        frame[name] = rng.integers(0, 2, size=len(ids))
    frame.loc[frame["sig_id"].isin(controls), names] = 0
    return frame


@functools.cache
def valid_tables() -> Tables:
    train = make_features(TRAIN_IDS, seed=0)
    train.loc[CONTROL_ROW, "cp_type"] = "ctl_vehicle"
    controls = [TRAIN_IDS[CONTROL_ROW]]
    # Target files list the ids in their own orders, as nothing requires them to match train.
    scored = make_targets(TRAIN_IDS[::-1], SCORED, seed=1, controls=controls)
    nonscored = make_targets(TRAIN_IDS[::2] + TRAIN_IDS[1::2], NONSCORED, seed=2, controls=controls)
    submission = pd.DataFrame({"sig_id": TEST_IDS[::-1]})
    for name in SCORED:
        submission[name] = 0.5
    return {
        "train_features": train,
        "train_targets_scored": scored,
        "train_targets_nonscored": nonscored,
        "train_drug": pd.DataFrame({"sig_id": TRAIN_IDS, "drug_id": [f"drug_{i % 3}" for i in range(8)]}),
        "test_features": make_features(TEST_IDS, seed=3),
        "sample_submission": submission,
    }


@pytest.fixture
def tables() -> Tables:
    """A fresh copy of a small valid data set; tests mutate it before `write_raw`."""
    return {stem: frame.copy() for stem, frame in valid_tables().items()}


def write_raw(directory: Path, tables: Tables, zipped: bool = False) -> Path:
    directory.mkdir()
    suffix = ".csv.zip" if zipped else ".csv"
    for stem, frame in tables.items():
        frame.to_csv(directory / f"{stem}{suffix}", index=False)
    return directory


def read_outputs(out_dir: Path) -> Tables:
    return {path.name.removesuffix(".parquet"): pd.read_parquet(path) for path in out_dir.iterdir()}


def import_tables(
    tmp_path: Path, tables: Tables, name: str = "run", zipped: bool = False
) -> tuple[dict, Tables]:
    src = write_raw(tmp_path / f"{name}_src", tables, zipped=zipped)
    out_dir = tmp_path / f"{name}_out"
    summary = import_raw(src, out_dir)
    return summary, read_outputs(out_dir)


def assert_same_outputs(actual: Tables, expected: Tables) -> None:
    assert actual.keys() == expected.keys()
    for stem in expected:
        pd.testing.assert_frame_equal(actual[stem], expected[stem])


# --- happy path ---------------------------------------------------------------------------


def test_writes_sorted_canonical_typed_tables_without_warnings(tmp_path, tables):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, outputs = import_tables(tmp_path, tables)

    assert set(outputs) == OUTPUTS
    for stem, frame in outputs.items():
        assert frame["sig_id"].is_monotonic_increasing, stem
        assert pd.api.types.is_string_dtype(frame["sig_id"]), stem
    for stem in ("train_features", "test_features"):
        frame = outputs[stem]
        assert list(frame.columns) == FEATURE_COLUMNS
        assert all(pd.api.types.is_string_dtype(frame[column]) for column in ("cp_type", "cp_dose"))
        assert frame["cp_time"].dtype == np.int64
        assert (frame[GENES + CELLS].dtypes == np.float32).all()
    assert list(outputs["train_targets_scored"].columns) == ["sig_id", *SCORED]
    assert list(outputs["train_targets_nonscored"].columns) == ["sig_id", *NONSCORED]
    for stem in ("train_targets_scored", "train_targets_nonscored"):
        assert (outputs[stem].drop(columns="sig_id").dtypes == np.int8).all()
    assert list(outputs["train_drug"].columns) == ["sig_id", "drug_id"]
    assert pd.api.types.is_string_dtype(outputs["train_drug"]["drug_id"])
    assert list(outputs["sample_submission"].columns) == ["sig_id", *SCORED]
    assert (outputs["sample_submission"][SCORED].dtypes == np.float64).all()


def test_values_are_kept_row_by_row(tmp_path, tables):
    _, outputs = import_tables(tmp_path, tables)

    for stem, frame in tables.items():
        expected = frame.sort_values("sig_id", ignore_index=True)
        written = outputs[stem][list(frame.columns)]
        pd.testing.assert_frame_equal(written, expected, check_dtype=False, atol=1e-6)


def test_summary(tmp_path, tables):
    summary, _ = import_tables(tmp_path, tables)

    assert summary == {
        "rows": {
            "train_features": 8,
            "test_features": 3,
            "train_targets_scored": 8,
            "train_targets_nonscored": 8,
            "train_drug": 8,
            "sample_submission": 3,
        },
        "n_genes": len(GENES),
        "n_cells": len(CELLS),
        "n_scored_targets": len(SCORED),
        "n_nonscored_targets": len(NONSCORED),
        "drug_file_present": True,
        "warnings": [],
    }


def test_zipped_inputs_give_identical_output(tmp_path, tables):
    _, plain = import_tables(tmp_path, tables, name="plain")
    _, zipped = import_tables(tmp_path, tables, name="zipped", zipped=True)

    assert_same_outputs(zipped, plain)


def test_input_column_order_does_not_matter(tmp_path, tables):
    _, expected = import_tables(tmp_path, tables, name="canonical")
    rng = np.random.default_rng(7)
    for stem in ("train_features", "test_features", "train_drug"):
        tables[stem] = tables[stem][list(rng.permutation(tables[stem].columns))]

    _, shuffled = import_tables(tmp_path, tables, name="shuffled")

    assert_same_outputs(shuffled, expected)


@pytest.mark.parametrize("stem", ["train_features", "test_features", "train_drug"])
def test_extra_columns_are_dropped_with_a_warning(tmp_path, tables, stem):
    _, expected = import_tables(tmp_path, tables, name="clean")
    tables[stem].insert(1, "notes", "hello")
    tables[stem]["g-x"] = 1.0

    with pytest.warns(RawDataWarning, match=rf"{stem}\.csv.*'notes', 'g-x'"):
        summary, outputs = import_tables(tmp_path, tables, name="extra")

    assert_same_outputs(outputs, expected)
    assert len(summary["warnings"]) == 1 and "notes" in summary["warnings"][0]


def test_missing_drug_file_gives_an_empty_drug_table_and_a_warning(tmp_path, tables):
    del tables["train_drug"]

    with pytest.warns(RawDataWarning, match="train_drug"):
        summary, outputs = import_tables(tmp_path, tables)

    drug = outputs["train_drug"]
    assert list(drug.columns) == ["sig_id", "drug_id"] and len(drug) == 0
    assert pd.api.types.is_string_dtype(drug["sig_id"]) and pd.api.types.is_string_dtype(drug["drug_id"])
    assert summary["drug_file_present"] is False
    assert len(summary["warnings"]) == 1 and "train_drug" in summary["warnings"][0]


# --- validation errors ----------------------------------------------------------------------


def import_fails(tmp_path: Path, tables: Tables) -> str:
    """Run an import that must fail; check it wrote nothing and return the error message."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    src = write_raw(tmp_path / "src", tables)
    with pytest.raises(DataError) as caught:
        import_raw(src, out_dir)
    assert list(out_dir.iterdir()) == []
    return str(caught.value)


def assert_mentions(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def row_of(tables: Tables, stem: str, position: int) -> str:
    return f"row {position + 1} (sig_id {tables[stem]['sig_id'][position]})"


def set_cell(tables: Tables, stem: str, position: int, column: str, value) -> None:
    frame = tables[stem]
    frame[column] = frame[column].astype(object)
    frame.loc[position, column] = value


@pytest.mark.parametrize("stem", REQUIRED_FILES)
def test_missing_file(tmp_path, tables, stem):
    del tables[stem]

    message = import_fails(tmp_path, tables)

    assert_mentions(message, f"{stem}.csv and {stem}.csv.zip", str(tmp_path / "src"))


@pytest.mark.parametrize(
    ("stem", "column"),
    [
        ("train_features", "sig_id"),
        ("train_features", "cp_type"),
        ("train_features", "cp_time"),
        ("test_features", "cp_dose"),
        ("train_targets_scored", "sig_id"),
        ("train_targets_nonscored", "sig_id"),
        ("train_drug", "sig_id"),
        ("train_drug", "drug_id"),
        ("sample_submission", "sig_id"),
        ("train_features", "g-5"),
        ("test_features", "c-0"),
    ],
)
def test_missing_column(tmp_path, tables, stem, column):
    tables[stem] = tables[stem].drop(columns=column)

    message = import_fails(tmp_path, tables)

    assert_mentions(message, f"file {stem}.csv", f"column {column!r}")


@pytest.mark.parametrize(("stem", "prefix"), [("train_features", "g-"), ("test_features", "c-")])
def test_no_gene_or_cell_columns_is_a_missing_first_column(tmp_path, tables, stem, prefix):
    frame = tables[stem]
    tables[stem] = frame.drop(columns=[c for c in frame.columns if c.startswith(prefix)])

    message = import_fails(tmp_path, tables)

    assert_mentions(message, f"file {stem}.csv", f"column '{prefix}0'")


@pytest.mark.parametrize(
    ("stem", "column"),
    [
        ("train_features", "g-1"),
        ("test_features", "cp_dose"),
        ("train_targets_scored", SCORED[0]),
        ("train_drug", "drug_id"),
        ("sample_submission", SCORED[2]),
    ],
)
def test_duplicated_column_name(tmp_path, tables, stem, column):
    tables[stem] = pd.concat([tables[stem], tables[stem][[column]]], axis=1)

    message = import_fails(tmp_path, tables)

    assert_mentions(message, f"file {stem}.csv", f"column {column!r}", "2 times")


@pytest.mark.parametrize(
    ("stem", "position", "column", "value"),
    [
        pytest.param("train_features", 4, "g-1", "abc", id="non-numeric gene"),
        pytest.param("train_features", 5, "c-1", np.nan, id="NaN cell"),
        pytest.param("test_features", 1, "g-10", np.inf, id="inf gene"),
        pytest.param("train_features", 3, "c-0", -np.inf, id="-inf cell"),
        pytest.param("train_features", 6, "g-2", 1e39, id="gene overflows float32"),
        pytest.param("train_features", 2, "cp_type", np.nan, id="NaN cp_type"),
        pytest.param("train_features", 1, "cp_time", np.nan, id="NaN cp_time"),
        pytest.param("test_features", 2, "cp_dose", np.nan, id="NaN cp_dose"),
        pytest.param("train_drug", 4, "drug_id", np.nan, id="NaN drug_id"),
        pytest.param("train_features", 3, "cp_type", "trt", id="bad cp_type"),
        pytest.param("test_features", 0, "cp_time", 36, id="bad cp_time"),
        pytest.param("train_features", 5, "cp_time", "abc", id="non-numeric cp_time"),
        pytest.param("train_features", 6, "cp_dose", "D3", id="bad cp_dose"),
        pytest.param("train_targets_scored", 2, SCORED[1], 2, id="target 2"),
        pytest.param("train_targets_scored", 7, SCORED[2], 0.5, id="target 0.5"),
        pytest.param("train_targets_scored", 0, SCORED[0], np.nan, id="target NaN"),
        pytest.param("train_targets_nonscored", 3, NONSCORED[1], "yes", id="target string"),
        pytest.param("train_targets_nonscored", 6, NONSCORED[0], -1, id="target -1"),
        pytest.param("train_targets_scored", 1, SCORED[0], True, id="target True"),
        pytest.param("sample_submission", 1, SCORED[1], "abc", id="non-numeric submission"),
    ],
)
def test_bad_value(tmp_path, tables, stem, position, column, value):
    row = row_of(tables, stem, position)
    set_cell(tables, stem, position, column, value)

    message = import_fails(tmp_path, tables)

    assert_mentions(message, f"file {stem}.csv", f"column {column!r}", row)


def test_missing_sig_id_reports_the_row_number(tmp_path, tables):
    set_cell(tables, "test_features", 2, "sig_id", np.nan)

    message = import_fails(tmp_path, tables)

    assert_mentions(message, "file test_features.csv", "column 'sig_id'", "row 3:")


@pytest.mark.parametrize(
    "stem", ["train_features", "test_features", "train_targets_scored", "train_drug", "sample_submission"]
)
def test_duplicated_sig_id(tmp_path, tables, stem):
    frame = tables[stem]
    frame.loc[2, "sig_id"] = frame["sig_id"][0]

    message = import_fails(tmp_path, tables)

    duplicate = row_of(tables, stem, 2)
    assert_mentions(message, f"file {stem}.csv", "column 'sig_id'", duplicate, "first seen in row 1")


@pytest.mark.parametrize(
    ("stem", "change"),
    [
        ("train_targets_scored", "unknown"),
        ("train_targets_nonscored", "lost"),
        ("train_drug", "unknown"),
        ("train_drug", "lost"),
        ("sample_submission", "unknown"),
        ("sample_submission", "lost"),
    ],
)
def test_sig_ids_differ_between_files(tmp_path, tables, stem, change):
    frame = tables[stem]
    if change == "unknown":
        frame.loc[1, "sig_id"] = "id_fff"
        expected = [row_of(tables, stem, 1), "id_fff is not in"]
    else:
        expected = [f"sig_id {frame['sig_id'][1]} from row", "is missing"]
        tables[stem] = frame.drop(index=1)

    message = import_fails(tmp_path, tables)

    assert_mentions(message, f"file {stem}.csv", "column 'sig_id'", *expected)


@pytest.mark.parametrize(
    ("change", "column", "problem"),
    [
        ("add", "g-11", "not in train_features.csv"),
        ("drop", "g-10", "of train_features.csv is missing"),
        ("drop", "c-1", "of train_features.csv is missing"),
    ],
)
def test_test_feature_columns_differ_from_train(tmp_path, tables, change, column, problem):
    test = tables["test_features"]
    tables["test_features"] = test.assign(**{column: 0.0}) if change == "add" else test.drop(columns=column)

    message = import_fails(tmp_path, tables)

    assert_mentions(message, "file test_features.csv", f"column {column!r}", problem)


@pytest.mark.parametrize(
    ("columns", "column", "problem"),
    [
        (["sig_id", SCORED[0], SCORED[2]], SCORED[1], "is missing"),
        (["sig_id", *SCORED, "tgt_extra"], "tgt_extra", "unexpected"),
        (["sig_id", SCORED[1], SCORED[0], SCORED[2]], SCORED[1], "position 1"),
    ],
)
def test_submission_columns_differ_from_scored_targets(tmp_path, tables, columns, column, problem):
    tables["sample_submission"] = tables["sample_submission"].assign(tgt_extra=0.5)[columns]

    message = import_fails(tmp_path, tables)

    assert_mentions(
        message, "file sample_submission.csv", f"column {column!r}", problem, "train_targets_scored.csv"
    )


def test_target_in_both_scored_and_nonscored(tmp_path, tables):
    nonscored = tables["train_targets_nonscored"]
    tables["train_targets_nonscored"] = nonscored.rename(columns={NONSCORED[1]: SCORED[2]})

    message = import_fails(tmp_path, tables)

    assert_mentions(
        message, "file train_targets_nonscored.csv", f"column {SCORED[2]!r}", "train_targets_scored.csv"
    )


def test_zip_with_several_files_is_rejected(tmp_path, tables):
    src = write_raw(tmp_path / "src", tables)
    with zipfile.ZipFile(src / "test_features.csv.zip", "w") as archive:
        archive.write(src / "test_features.csv", "test_features.csv")
        archive.writestr("readme.txt", "hello")
    (src / "test_features.csv").unlink()

    with pytest.raises(DataError, match=r"test_features\.csv\.zip.*exactly one"):
        import_raw(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def break_first_file(tables: Tables) -> None:
    set_cell(tables, "train_features", 0, "g-0", "abc")


def break_last_check(tables: Tables) -> None:
    tables["sample_submission"] = tables["sample_submission"].drop(index=0)


@pytest.mark.parametrize("mutate", [break_first_file, break_last_check])
def test_failed_import_leaves_old_outputs_untouched(tmp_path, tables, mutate):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    old = out_dir / "train_features.parquet"
    old.write_bytes(b"old output")
    mutate(tables)
    src = write_raw(tmp_path / "src", tables)

    with pytest.raises(DataError):
        import_raw(src, out_dir)

    assert list(out_dir.iterdir()) == [old]
    assert old.read_bytes() == b"old output"


def test_permuted_labels_move_whole_label_rows_among_treated_rows_only():
    ids = [f"id_{i}" for i in range(8)]
    features = pd.DataFrame({"sig_id": ids, "cp_type": ["trt_cp"] * 3 + ["ctl_vehicle"] + ["trt_cp"] * 4})
    # each treated row's labels encode its number; the targets' row order differs from the features'
    scored = pd.DataFrame({"sig_id": ids, "a": [1, 0, 1, 0, 0, 1, 1, 0], "b": [0, 1, 1, 0, 0, 0, 1, 1]}).iloc[::-1]
    nonscored = pd.DataFrame({"sig_id": ids, "n0": [0, 1, 0, 0, 0, 1, 0, 1], "n1": [0, 0, 1, 0, 1, 1, 0, 0]})
    new_scored, new_nonscored = permuted_labels(features, scored, nonscored, seed=3)
    assert new_scored["sig_id"].tolist() == scored["sig_id"].tolist(), "row order kept"
    before = scored.merge(nonscored, on="sig_id").set_index("sig_id")
    after = new_scored.merge(new_nonscored, on="sig_id").set_index("sig_id")
    assert after.loc["id_3"].tolist() == [0, 0, 0, 0], "the control keeps its zero labels"
    treated = [i for i in ids if i != "id_3"]
    rows = lambda table: sorted(map(tuple, table.loc[treated].to_numpy()))  # noqa: E731
    assert rows(after) == rows(before), "the same label rows, scored and non-scored together"
    assert not after.loc[treated].equals(before.loc[treated])
    again = permuted_labels(features, scored, nonscored, seed=3)
    assert again[0].equals(new_scored) and again[1].equals(new_nonscored)


# --- the catalogue of bad inputs (issue: reliability) -------------------------------------------

def truncate(path: Path) -> None:
    """Cut the file mid-row, as an interrupted download leaves it."""
    text = path.read_text()
    path.write_text(text[: len(text) * 2 // 3])


def empty(path: Path) -> None:
    path.write_text("")


def not_a_zip(path: Path) -> None:
    path.unlink()
    path.with_name(path.name + ".zip").write_bytes(b"this is not a zip archive")


BAD_FILES = [
    ("truncated train features", "train_features", truncate, r"train_features\.csv"),
    ("empty test file", "test_features", empty, r"test_features\.csv.*empty"),
    ("a .csv.zip that is not a zip", "test_features", not_a_zip, r"test_features\.csv\.zip.*not a (valid )?zip"),
]


@pytest.mark.parametrize("what, stem, damage, message", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_damaged_file_is_refused_by_name_and_nothing_is_written(tmp_path, tables, what, stem, damage, message):
    src = write_raw(tmp_path / "src", tables)
    damage(src / f"{stem}.csv")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(DataError, match=message):
        import_raw(src, out_dir)
    assert list(out_dir.iterdir()) == []


def strings_in_a_numeric_column(tables):
    set_cell(tables, "test_features", 2, "c-1", "twelve")


def unknown_target_column(tables):
    tables["train_targets_scored"]["not_a_moa"] = 0


def sample_columns_differ(tables):
    tables["sample_submission"] = tables["sample_submission"].drop(columns=SCORED[-1])


def ids_repeat_across_train_and_test(tables):
    tables["test_features"].loc[1, "sig_id"] = TRAIN_IDS[4]
    tables["sample_submission"].loc[tables["sample_submission"]["sig_id"] == TEST_IDS[1], "sig_id"] = TRAIN_IDS[4]


BAD_TABLES = [
    (strings_in_a_numeric_column, r"test_features\.csv, column 'c-1', row 3 .*'twelve'"),
    (unknown_target_column, r"'not_a_moa'"),
    (sample_columns_differ, rf"sample_submission\.csv.*{SCORED[-1]}"),
    (ids_repeat_across_train_and_test, rf"{TRAIN_IDS[4]}.*both|both.*{TRAIN_IDS[4]}"),
]


@pytest.mark.parametrize("mutate, message", BAD_TABLES, ids=[case[0].__name__ for case in BAD_TABLES])
def test_a_bad_table_is_refused_with_file_column_and_row_and_nothing_is_written(tmp_path, tables, mutate, message):
    mutate(tables)
    assert re.search(message, import_fails(tmp_path, tables))
