"""Import the raw Kaggle MoA CSVs into canonical Parquet tables.

All files are read and validated before anything is written, so bad input raises
`moa.schema.DataError` and leaves `out_dir` exactly as it was. The tables written are sorted by
sig_id and have canonical columns and dtypes:

- features: sig_id, cp_type, cp_time, cp_dose, g-0..g-N, c-0..c-M (str, int64 cp_time, float32);
- targets: sig_id and the target columns in the file's (Kaggle) order, int8;
- train_drug: sig_id, drug_id (str), empty when the Kaggle file is absent;
- sample_submission: sig_id and the scored target columns, float64.
"""
from __future__ import annotations

import contextlib
import csv
import io
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from moa import validation
from moa.io import atomic_path
from moa.schema import (
    CATEGORICAL,
    CELL_PREFIX,
    CP_DOSE,
    CP_TIME,
    CP_TYPE,
    DRUG,
    GENE_PREFIX,
    ID,
    RAW_FILES,
    TREATED,
    DataError,
)

TRAIN_FEATURES = "train_features"
TEST_FEATURES = "test_features"
SCORED = "train_targets_scored"
NONSCORED = "train_targets_nonscored"
DRUG_FILE = "train_drug"
SUBMISSION = "sample_submission"
REQUIRED_FILES = (TRAIN_FEATURES, SCORED, NONSCORED, TEST_FEATURES, SUBMISSION)

# Without index_col=False, rows with one field more than the header would silently shift into
# an index; without utf-8-sig, a BOM from a spreadsheet export would stick to `sig_id`.
CSV_OPTIONS = {"index_col": False, "encoding": "utf-8-sig"}


class RawDataWarning(UserWarning):
    """The raw data was accepted, but not as given: a file was absent or columns were dropped."""


def import_raw(src_dir: str | Path, out_dir: str | Path, permute_labels: int | None = None) -> dict:
    """Validate the six Kaggle CSVs in `src_dir`, then write them as Parquet into `out_dir`; with
    `permute_labels` (a seed), the label rows shuffled first (`permuted_labels`).

    Returns a summary: row counts per table, numbers of genes, cells and targets, whether
    train_drug was present, and the warnings issued.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    paths = {stem: require_csv(src_dir, stem) for stem in REQUIRED_FILES}
    drug_path = locate_csv(src_dir, DRUG_FILE)
    warned: list[str] = []

    train = load_features(paths[TRAIN_FEATURES], warned)
    scored = load_targets(paths[SCORED])
    nonscored = load_targets(paths[NONSCORED])
    for stem, targets in ((SCORED, scored), (NONSCORED, nonscored)):
        validation.check_same_ids(paths[stem].name, targets, paths[TRAIN_FEATURES].name, train)
    validation.check_disjoint_targets(
        paths[NONSCORED].name, target_names(nonscored), paths[SCORED].name, target_names(scored)
    )
    if drug_path is None:
        warn(f"{DRUG_FILE}.csv (or .csv.zip) not found in {src_dir}: writing an empty drug table", warned)
        drug = empty_drug_table()
    else:
        drug = load_drug(drug_path, warned)
        validation.check_same_ids(drug_path.name, drug, paths[TRAIN_FEATURES].name, train)

    test = load_features(paths[TEST_FEATURES], warned)
    validation.check_same_columns(
        paths[TEST_FEATURES].name, list(test.columns), paths[TRAIN_FEATURES].name, list(train.columns)
    )
    validation.check_disjoint_ids(paths[TEST_FEATURES].name, test, paths[TRAIN_FEATURES].name, train)
    submission = load_submission(paths[SUBMISSION], paths[SCORED].name, target_names(scored))
    validation.check_same_ids(paths[SUBMISSION].name, submission, paths[TEST_FEATURES].name, test)
    if permute_labels is not None:
        scored, nonscored = permuted_labels(train, scored, nonscored, permute_labels)
        warn(f"labels permuted among the treated train rows (seed {permute_labels}): a leakage check, "
             "no model can learn anything here", warned)

    tables = {
        TRAIN_FEATURES: train,
        TEST_FEATURES: test,
        SCORED: scored,
        NONSCORED: nonscored,
        DRUG_FILE: drug,
        SUBMISSION: submission,
    }
    write_tables(tables, out_dir)
    return summarize(tables, drug_file_present=drug_path is not None, warned=warned)


def permuted_labels(features: pd.DataFrame, scored: pd.DataFrame, nonscored: pd.DataFrame, seed: int):
    """Whole label rows, scored and non-scored together, shuffled among the treated train rows, so that
    labels are independent of the features and every target keeps its rate and co-occurrences. Rows,
    not drugs: under row-level CV a model may honestly recognise a drug from its other rows, so only a
    row shuffle leaves nothing to learn. Controls keep their all-zero labels."""
    ids = features[ID].to_numpy()
    treated = ids[(features[CP_TYPE] == TREATED).to_numpy()]
    donor = pd.Series(ids, index=ids)
    donor[treated] = treated[np.random.default_rng(seed).permutation(len(treated))]
    shuffled = []
    for targets in (scored, nonscored):
        by_id = targets.set_index(ID)
        moved = by_id.loc[donor.loc[by_id.index].to_numpy()].set_axis(by_id.index)
        shuffled.append(moved.reset_index())
    return tuple(shuffled)


def summarize(tables: dict[str, pd.DataFrame], drug_file_present: bool, warned: list[str]) -> dict:
    columns = tables[TRAIN_FEATURES].columns
    return {
        "rows": {stem: len(table) for stem, table in tables.items()},
        "n_genes": sum(column.startswith(GENE_PREFIX) for column in columns),
        "n_cells": sum(column.startswith(CELL_PREFIX) for column in columns),
        "n_scored_targets": len(target_names(tables[SCORED])),
        "n_nonscored_targets": len(target_names(tables[NONSCORED])),
        "drug_file_present": drug_file_present,
        "warnings": warned,
    }


def warn(message: str, warned: list[str]) -> None:
    warned.append(message)
    warnings.warn(message, RawDataWarning)


def locate_csv(src_dir: Path, stem: str) -> Path | None:
    """`<stem>.csv`, else `<stem>.csv.zip`, in `src_dir`; None when neither exists."""
    for name in (f"{stem}.csv", f"{stem}.csv.zip"):
        if (src_dir / name).is_file():
            return src_dir / name
    return None


def require_csv(src_dir: Path, stem: str) -> Path:
    path = locate_csv(src_dir, stem)
    if path is None:
        problem = f"file not found: looked for {stem}.csv and {stem}.csv.zip in {src_dir}"
        raise DataError(f"{stem}.csv", problem)
    return path


@contextlib.contextmanager
def open_csv(path: Path) -> Iterator[IO[bytes]]:
    """A binary handle on the CSV; a `.csv.zip` must hold exactly one file."""
    if path.suffix != ".zip":
        with path.open("rb") as handle:
            yield handle
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise DataError(path.name, f"not a readable zip archive: {error}") from error
    with archive:
        # Archives made on macOS carry resource-fork entries beside the real file.
        members = [n for n in archive.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
        if len(members) != 1:
            raise DataError(path.name, f"zip archive must hold exactly one CSV, found {members}")
        with archive.open(members[0]) as handle:
            yield handle


def read_header(path: Path) -> list[str]:
    with open_csv(path) as handle:
        text = io.TextIOWrapper(handle, encoding=CSV_OPTIONS["encoding"], newline="")
        header = next(csv.reader(text), None)
        text.detach()
    if not header:
        raise DataError(path.name, "file is empty")
    return header


def read_raw_csv(path: Path, string_columns: Sequence[str]) -> pd.DataFrame:
    """The CSV with rows in file order; `string_columns` are read as text, never as numbers."""
    try:
        validation.check_unique_column_names(path.name, read_header(path))
        with open_csv(path) as handle:
            return pd.read_csv(handle, dtype={column: str for column in string_columns}, **CSV_OPTIONS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(path.name, f"cannot parse the CSV: {str(error).strip()}") from error


def drop_extra_columns(file: str, extras: Sequence[str], warned: list[str]) -> None:
    if extras:
        warn(f"{file}: dropping extra columns {list(extras)}", warned)


def load_features(path: Path, warned: list[str]) -> pd.DataFrame:
    """A validated features table with canonical columns and dtypes; rows stay in file order."""
    file = path.name
    frame = read_raw_csv(path, string_columns=(ID, CP_TYPE, CP_DOSE))
    genes, cells, extras = validation.split_feature_columns(file, list(frame.columns))
    drop_extra_columns(file, extras, warned)
    validation.check_no_missing(file, frame, validation.FEATURE_REQUIRED)
    validation.check_categoricals(file, frame)
    validation.check_finite_numbers(file, frame, genes + cells)
    validation.check_unique_ids(file, frame)
    dtypes = {CP_TIME: "int64"} | {column: "float32" for column in genes + cells}
    return frame[[ID, *CATEGORICAL, *genes, *cells]].astype(dtypes)


def target_names(targets: pd.DataFrame) -> list[str]:
    return [column for column in targets.columns if column != ID]


def load_targets(path: Path) -> pd.DataFrame:
    """A validated 0/1 target table (int8), columns in file order; rows stay in file order."""
    file = path.name
    frame = read_raw_csv(path, string_columns=(ID,))
    validation.check_required_columns(file, frame.columns, (ID,))
    targets = target_names(frame)
    if not targets:
        raise DataError(file, "no target columns besides sig_id")
    validation.check_no_missing(file, frame, (ID,))
    validation.check_binary(file, frame, targets)
    validation.check_unique_ids(file, frame)
    return frame[[ID, *targets]].astype({column: "int8" for column in targets})


def load_drug(path: Path, warned: list[str]) -> pd.DataFrame:
    file = path.name
    frame = read_raw_csv(path, string_columns=(ID, DRUG))
    validation.check_required_columns(file, frame.columns, (ID, DRUG))
    drop_extra_columns(file, [column for column in frame.columns if column not in (ID, DRUG)], warned)
    validation.check_no_missing(file, frame, (ID, DRUG))
    validation.check_unique_ids(file, frame)
    return frame[[ID, DRUG]]


def empty_drug_table() -> pd.DataFrame:
    return pd.DataFrame({ID: pd.Series(dtype=str), DRUG: pd.Series(dtype=str)})


def load_submission(path: Path, scored_file: str, scored_targets: Sequence[str]) -> pd.DataFrame:
    """A validated sample submission whose columns are the scored targets, in their order."""
    file = path.name
    frame = read_raw_csv(path, string_columns=(ID,))
    validation.check_required_columns(file, frame.columns, (ID,))
    validation.check_same_columns(file, target_names(frame), scored_file, scored_targets)
    validation.check_no_missing(file, frame, (ID,))
    validation.check_finite_numbers(file, frame, scored_targets, dtype="float64")
    validation.check_unique_ids(file, frame)
    return frame[[ID, *scored_targets]].astype({column: "float64" for column in scored_targets})


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> None:
    """Write every table sorted by sig_id; rename them into place only once all are written."""
    with contextlib.ExitStack() as stack:
        for stem, table in tables.items():
            tmp = stack.enter_context(atomic_path(out_dir / f"{RAW_FILES[stem]}.parquet"))
            table.sort_values(ID, ignore_index=True).to_parquet(tmp, index=False)
