"""The output contract (moa.contract): every breach is refused with the file, row and column named; the
workflow's check step runs it over every collected table and the submission."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from moa import contract

TARGETS = ["a_inhibitor", "b_agonist"]


def predictions(values=((0.1, 0.2), (0.3, 0.4), (0.0, 0.0)), ids=("id_1", "id_2", "id_3"), columns=TARGETS):
    frame = pd.DataFrame([list(v) for v in values], columns=list(columns))
    frame.insert(0, "sig_id", list(ids))
    return frame


ROWS = ["id_1", "id_2", "id_3"]


def test_a_table_that_keeps_the_contract_passes():
    record = contract.check_predictions(predictions(), "t.parquet", ROWS, TARGETS, controls=["id_3", "id_9"])
    assert record == {"rows": 3, "targets": 2, "controls_zero": 1}


@pytest.mark.parametrize("table, controls, message", [
    (predictions(columns=["a_inhibitor", "c_blocker"]), (), r"lacks target column 'b_agonist' \(2 columns, 2 targets"),
    (predictions(columns=["b_agonist", "a_inhibitor"]), (), "has the targets in another order"),
    (predictions().assign(extra=0.0), (), "has column 'extra', which is not a target"),
    (predictions(ids=("id_1", "id_2", "id_4")), (), r"lacks row 'id_3' \(3 rows, 3 expected\)"),
    (predictions(ids=("id_1", "id_1", "id_3")), (), "row 'id_1' appears more than once"),
    (predictions(ids=("id_2", "id_1", "id_3")), (), "rows are not in sig_id order"),
    (predictions(values=((0.1, np.nan), (0.3, 0.4), (0, 0))), (), "value nan at row 'id_1', column 'b_agonist' is not a probability"),
    (predictions(values=((0.1, 0.2), (1.5, 0.4), (0, 0))), (), "value 1.5 at row 'id_2', column 'a_inhibitor'"),
    (predictions(values=((0.1, 0.2), (0.3, 0.4), (0, 0.25))), ["id_3"], "control row 'id_3' has 0.25 in column 'b_agonist'"),
])
def test_each_breach_is_refused_naming_the_file_row_and_column(table, controls, message):
    with pytest.raises(contract.ContractError, match=f"^test.parquet: {message}"):
        contract.check_predictions(table, "test.parquet", ROWS, TARGETS, controls=controls)


def test_extra_rows_are_refused():
    table = predictions(values=((0.1, 0.2), (0.3, 0.4), (0, 0), (0, 0)), ids=("id_1", "id_2", "id_3", "id_4"))
    with pytest.raises(contract.ContractError, match=r"has row 'id_4', which it should not \(4 rows, 3 expected\)"):
        contract.check_predictions(table, "t", ROWS, TARGETS)


def test_the_submission_keeps_the_sample_order():
    table = predictions(ids=("id_3", "id_1", "id_2"), values=((0, 0), (0.1, 0.2), (0.3, 0.4)))
    contract.check_predictions(table, "s.csv", ["id_3", "id_1", "id_2"], TARGETS, in_given_order=True)
    with pytest.raises(contract.ContractError, match="rows are not in the order of sig_ids expected"):
        contract.check_predictions(table, "s.csv", ROWS, TARGETS, in_given_order=True)


def test_the_workflow_checks_every_collected_table_and_the_submission(run):
    results = run / "results"
    checked = json.loads((results / "checks" / "outputs.json").read_text())
    models = [p.parent.name for p in (results / "models").glob("*/oof.parquet")]
    for model in models:
        assert f"results/models/{model}/oof.parquet" in checked and f"results/models/{model}/test.parquet" in checked
    assert {"results/blend/searched/oof.parquet", "results/blend/fixed/test.parquet", "results/submission.csv"} <= set(checked)
    test = pd.read_parquet(results / "data" / "test_features.parquet")
    assert checked["results/submission.csv"]["rows"] == len(test)
    assert checked["results/submission.csv"]["controls_zero"] == (test["cp_type"] == "ctl_vehicle").sum()
    # the CNN trains with the controls: its OOF holds them, the blends' OOF only the treated rows
    train = pd.read_parquet(results / "data" / "train_features.parquet")
    assert checked["results/models/cnn/oof.parquet"]["rows"] == len(train)
    assert checked["results/blend/searched/oof.parquet"]["rows"] == (train["cp_type"] == "trt_cp").sum()


def test_a_broken_collected_table_fails_the_check_by_name(run, tmp_path):
    results = run / "results"
    broken = pd.read_parquet(results / "models" / "linear" / "test.parquet")
    broken.iloc[4, 7] = np.inf
    broken.to_parquet(tmp_path / "test.parquet")
    models = {"linear": {"oof": str(results / "models" / "linear" / "oof.parquet"), "test": str(tmp_path / "test.parquet"),
                         "folds": str(results / "folds" / "old" / "seed0.parquet"), "targets": "scored"}}
    data = {"train_features": results / "data" / "train_features.parquet",
            "test_features": results / "data" / "test_features.parquet",
            "scored": results / "data" / "train_targets_scored.parquet",
            "nonscored": results / "data" / "train_targets_nonscored.parquet",
            "sample_submission": results / "data" / "sample_submission.parquet"}
    with pytest.raises(contract.ContractError, match=rf"test.parquet: value inf at row '{broken['sig_id'].iloc[4]}', "
                                                     rf"column '{broken.columns[7]}' is not a probability"):
        contract.check_run(models, {}, results / "submission.csv", data)



FRAME_WRITERS = {"to_csv", "to_parquet", "to_json", "write_text", "write_bytes", "savefig"}
MODULE_WRITERS = {("torch", "save"), ("joblib", "dump"), ("json", "dump"), ("pickle", "dump"), ("np", "save")}


def unguarded_writes(source: str) -> list[int]:
    """Line numbers of file-writing calls outside any `with` block that takes an `atomic_path`, in its items
    or (through an ExitStack) in its body."""
    import ast

    def calls_atomic_path(node):
        return any(isinstance(call, ast.Call)
                   and getattr(call.func, "attr", getattr(call.func, "id", None)) == "atomic_path"
                   for call in ast.walk(node))

    def is_write(node):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return False
        receiver = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        return node.func.attr in FRAME_WRITERS or (receiver, node.func.attr) in MODULE_WRITERS

    lines = []

    def visit(node, guarded):
        guarded = guarded or (isinstance(node, ast.With) and calls_atomic_path(node))
        if is_write(node) and not guarded:
            lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source), False)
    return lines


def test_the_audit_finds_a_write_outside_atomic_path():
    source = ("with io.atomic_path(p) as tmp:\n    frame.to_csv(tmp)\n"
              "frame.to_parquet(p)\n"
              "with open(p) as handle:\n    plt.savefig(handle)\n"
              "with contextlib.ExitStack() as stack:\n    torch.save(m, stack.enter_context(atomic_path(p)))\n"
              "joblib.dump(m, p)\n")
    assert unguarded_writes(source) == [3, 5, 8]


def test_every_writer_in_the_package_and_the_workflow_scripts_renames_a_temporary_file():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [*sorted((root / "src" / "moa").rglob("*.py")), *sorted((root / "workflow" / "scripts").glob("*.py"))]
    found = {str(path.relative_to(root)): unguarded_writes(path.read_text()) for path in sources}
    assert {path: lines for path, lines in found.items() if lines} == {}
