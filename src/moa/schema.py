"""Column conventions of the MoA tables and the error raised on bad input."""
from __future__ import annotations

ID = "sig_id"
DRUG = "drug_id"
CP_TYPE = "cp_type"
CP_TIME = "cp_time"
CP_DOSE = "cp_dose"
CATEGORICAL = (CP_TYPE, CP_TIME, CP_DOSE)
TREATED = "trt_cp"
CONTROL = "ctl_vehicle"
CP_TYPES = (TREATED, CONTROL)
CP_TIMES = (24, 48, 72)
CP_DOSES = ("D1", "D2")
GENE_PREFIX = "g-"
CELL_PREFIX = "c-"
N_GENES = 772
N_CELLS = 100

# Kaggle file stems -> the Parquet names written under results/data/
RAW_FILES = {
    "train_features": "train_features",
    "train_targets_scored": "train_targets_scored",
    "train_targets_nonscored": "train_targets_nonscored",
    "train_drug": "train_drug",
    "test_features": "test_features",
    "sample_submission": "sample_submission",
}


def gene_columns(n: int = N_GENES) -> list[str]:
    return [f"{GENE_PREFIX}{i}" for i in range(n)]


def cell_columns(n: int = N_CELLS) -> list[str]:
    return [f"{CELL_PREFIX}{i}" for i in range(n)]


def feature_columns(n_genes: int = N_GENES, n_cells: int = N_CELLS) -> list[str]:
    """The Kaggle feature layout: id, three categoricals, genes, cells."""
    return [ID, *CATEGORICAL, *gene_columns(n_genes), *cell_columns(n_cells)]


def numeric_columns(columns) -> list[str]:
    """Gene and cell columns, found by name, in the order given."""
    return [c for c in columns if c.startswith((GENE_PREFIX, CELL_PREFIX))]


def treated_ids(features) -> list[str]:
    """sig_ids of the trt_cp rows of a features table, in its order."""
    return features.loc[features[CP_TYPE] == TREATED, ID].tolist()


class DataError(ValueError):
    """Bad input data. The message names the file, the column and the first bad row."""

    def __init__(self, file, problem: str, column: str | None = None, row: int | str | None = None):
        self.file, self.column, self.row, self.problem = str(file), column, row, problem
        where = [f"file {self.file}"]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {problem}")
