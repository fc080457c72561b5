"""The card kit (bench/card/): which wheels it carries, what its version table reports, how the runner fails."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "bench" / "card"


def load(name: str):
    sys.path.insert(0, str(CARD))   # versions.py imports kit.py as its neighbour
    try:
        spec = importlib.util.spec_from_file_location(f"card_{name}", CARD / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(CARD))
    return module


kit = load("kit")
versions = load("versions")


def test_the_card_requirements_widen_the_torch_pins_to_the_supported_range_and_keep_the_rest():
    requirements = kit.card_requirements()
    assert "torch>=2.11,<2.15" in requirements and "torchvision>=0.26,<0.30" in requirements
    assert not any(r.startswith(("torch==", "torchvision==")) for r in requirements)
    assert "snakemake>=9,<10" in requirements and "jsonschema>=4" in requirements


def test_a_card_range_for_a_package_that_is_no_dependency_is_refused(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["torch==2.14.1"]\n[tool.moa.card]\ntorch = ">=2.11"\njax = ">=0.4"\n')
    with pytest.raises(SystemExit, match=r"names \['jax'\], which are not dependencies"):
        kit.card_requirements(pyproject)


def test_the_image_list_is_read_with_canonical_names_and_the_versions_seen(tmp_path):
    image = tmp_path / "image.txt"
    image.write_text("# the card\nPyYAML\ntorch==2.11.0  # seen\n\nhuggingface_hub==1.33.0\n")
    assert kit.read_image(image) == {"pyyaml": None, "torch": "2.11.0", "huggingface-hub": "1.33.0"}
    shipped = kit.read_image()
    assert shipped["torch"] == "2.11.0" and shipped["numpy"] == "2.5.2" and "snakemake" not in shipped


def test_the_kit_carries_what_the_image_lacks_and_only_then_image_packages_at_other_versions():
    resolved = {"snakemake": {"version": "9.27.1", "wheel": True}, "numpy": {"version": "2.4.6", "wheel": True},
                "pandas": {"version": "3.1.1", "wheel": True}, "torch": {"version": "2.11.0", "wheel": True}}
    image = {"numpy": "2.5.2", "pandas": None, "torch": "2.11.0"}
    assert set(kit.kit_packages(resolved, image, pinned=True)) == {"snakemake"}
    # the pins did not hold: numpy must travel at the version the project takes; pandas' version there is unknown
    assert set(kit.kit_packages(resolved, image, pinned=False)) == {"snakemake", "numpy"}


def test_the_size_check_counts_the_kit_and_the_tree_together():
    mib = 2 ** 20
    table, fits = kit.size_table(40 * mib, 24 * mib, 64)
    assert fits and "| together | 64.0 |" in table
    assert not kit.size_table(40 * mib, 24 * mib + 1, 64)[1]


def test_the_version_table_follows_requirements_and_names_what_is_unmet():
    dists = versions.installed()
    rows = {row["package"]: row for row in versions.requirement_rows(["jsonschema>=4", "pyyaml>=999"], dists, Path("/kit"))}
    assert rows["jsonschema"]["ok"] and rows["jsonschema"]["from"] == "image"
    assert "referencing" in rows and rows["referencing"]["unmet"] == ""   # jsonschema's own requirement, followed
    assert not rows["pyyaml"]["ok"] and rows["pyyaml"]["unmet"] == "moa needs >=999"
    missing = versions.requirement_rows(["no-such-package-here>=1"], dists, Path("/kit"))
    assert missing == [{"package": "no-such-package-here", "version": "-", "from": "missing", "ok": False,
                        "unmet": "moa needs >=1"}]


def test_the_runner_without_a_kit_stops_at_once_saying_how_to_build_one(tmp_path):
    done = subprocess.run(["bash", str(CARD / "run.sh"), "--device", "cpu"], capture_output=True, text=True,
                          env={**os.environ, "KIT": str(tmp_path), "OUT": str(tmp_path / "out")}, timeout=60)
    assert done.returncode == 2
    assert f"no wheels in {tmp_path}: build the kit with 'make gpu-kit'" in done.stderr
