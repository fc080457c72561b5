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



FRAME_WRITERS = {"to_csv", "to_parquet", "to_json", "to_pickle", "to_feather", "to_html", "write_text",
                 "write_bytes", "savefig", "savez", "savetxt"}
MODULE_WRITERS = {("torch", "save"), ("joblib", "dump"), ("json", "dump"), ("pickle", "dump"), ("np", "save"),
                  ("numpy", "save"), ("shutil", "copy"), ("shutil", "copy2"), ("shutil", "copyfile")}
TEXT_OR_STREAM_WRITERS = {("yaml", "dump"), ("yaml", "safe_dump")}
PATH_KEYWORDS = {"path", "path_or_buf", "buf", "fname", "file"}


def unguarded_writes(source: str) -> list[int]:
    """Line numbers of file-writing calls whose target is not a temporary path from `atomic_path` (bound by
    `with ... atomic_path(...) as name` or `name = stack.enter_context(atomic_path(...))`)."""
    import ast

    tree = ast.parse(source)

    def calls_atomic_path(node):
        return any(isinstance(call, ast.Call)
                   and getattr(call.func, "attr", getattr(call.func, "id", None)) == "atomic_path"
                   for call in ast.walk(node))

    temporary = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            temporary |= {item.optional_vars.id for item in node.items
                          if calls_atomic_path(item.context_expr) and isinstance(item.optional_vars, ast.Name)}
        elif isinstance(node, ast.Assign) and calls_atomic_path(node.value):
            temporary |= {target.id for target in node.targets if isinstance(target, ast.Name)}

    def names_in(nodes):
        return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}

    def opens_for_writing(call):
        mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
        if isinstance(call.func, ast.Attribute) and call.args:  # Path.open(mode)
            mode = call.args[0]
        return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax")

    lines = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        func = call.func
        arguments = [*call.args, *(k.value for k in call.keywords)]
        if isinstance(func, ast.Attribute):
            receiver = func.value.id if isinstance(func.value, ast.Name) else None
            if (receiver, func.attr) in TEXT_OR_STREAM_WRITERS:
                targets = call.args[1:] + [k.value for k in call.keywords if k.arg == "stream"]
                if not targets:  # without a stream, yaml's dumps return text
                    continue
            elif (receiver, func.attr) in MODULE_WRITERS:
                targets = arguments
            elif func.attr in ("write_text", "write_bytes") or (func.attr == "open" and opens_for_writing(call)):
                targets = [func.value]
            elif func.attr in FRAME_WRITERS:
                targets = call.args[:1] + [k.value for k in call.keywords if k.arg in PATH_KEYWORDS]
                if not targets:  # without a path, to_csv, to_html and to_json return text
                    continue
            else:
                continue
        elif isinstance(func, ast.Name) and func.id == "open" and opens_for_writing(call):
            targets = call.args[:1]
        else:
            continue
        if not names_in(targets) & temporary:
            lines.append(call.lineno)
    return sorted(lines)


def test_the_audit_finds_a_write_outside_atomic_path():
    source = ("with io.atomic_path(p) as tmp:\n    frame.to_csv(tmp)\n"
              "frame.to_parquet(p)\n"
              "with open(p) as handle:\n    plt.savefig(handle)\n"
              "with contextlib.ExitStack() as stack:\n    out = stack.enter_context(atomic_path(p))\n"
              "    torch.save(m, out)\n    joblib.dump(m, q)\n"
              "with atomic_path(p) as tmp:\n    frame.to_csv(p)\n    tmp.write_text(frame.to_csv())\n"
              "with open(p, 'w') as handle:\n    handle.write('x')\n"
              "Path(p).open('a')\nopen(p)\nframe.to_html(border=0)\nframe.to_json(path_or_buf=p)\n"
              "text = yaml.safe_dump(c, sort_keys=False)\nyaml.safe_dump(c, handle)\nyaml.dump(c, stream=handle)\n")
    assert unguarded_writes(source) == [3, 5, 9, 11, 13, 15, 18, 20, 21]


def test_every_writer_in_the_package_and_the_workflow_scripts_renames_a_temporary_file():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [*sorted((root / "src" / "moa").rglob("*.py")), *sorted((root / "workflow" / "scripts").rglob("*.py"))]
    found = {str(path.relative_to(root)): unguarded_writes(path.read_text()) for path in sources}
    assert {path: lines for path, lines in found.items() if lines} == {}
