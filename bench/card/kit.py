"""Build the card kit: the wheels a bare card machine lacks to run this project, and nothing else.

    make gpu-kit          # = python3.12 bench/card/kit.py --out .whl

The card machine reaches no package registry and carries at most 64 MiB (working tree and wheels
together). Its image (bench/card/image.txt) already holds torch, numpy, pandas, timm and most of what the
project imports. This script, run by a CPython 3.12 on x86-64 Linux (the card's interpreter):

1. resolves the project's dependencies (pyproject.toml, with torch and torchvision widened to the range
   in `[tool.moa.card]`) against the image, the versions seen there pinned;
2. downloads, without dependencies, a wheel for CPython 3.12 on manylinux x86-64 of every resolved
   package the image lacks (a package published only as a source archive is built into a wheel here,
   and must come out pure Python); if the pinned image cannot satisfy the project, the image packages
   whose resolved version differs are carried too;
3. removes older wheels from the folder, writes `kit.txt` (what the kit holds) and `image.txt` (the image
   packages the project uses, at the versions resolved: what `make gpu-mirror` installs), and checks that
   the working tree and the kit together stay under the card machine's limit.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE = Path(__file__).with_name("image.txt")
LIMIT_MIB = 64
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux_2_5_x86_64",
             "manylinux1_x86_64")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def read_image(path: Path = IMAGE) -> dict[str, str | None]:
    """The image's packages: canonical name -> the version seen there, or None where none was seen."""
    image = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            image[canonical(name)] = version or None
    return image


def card_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The project's dependencies with each pin of `[tool.moa.card]` replaced by the range given there."""
    project = tomllib.loads(pyproject.read_text())
    ranges = {canonical(k): v for k, v in project["tool"]["moa"]["card"].items()}
    requirements = []
    for requirement in project["project"]["dependencies"]:
        name = requirement_name(requirement)
        requirements.append(name + ranges[name] if name in ranges else requirement)
    missing = set(ranges) - {requirement_name(r) for r in requirements}
    if missing:
        raise SystemExit(f"{pyproject}: [tool.moa.card] names {sorted(missing)}, which are not dependencies")
    return requirements


def resolve(requirements: list[str], pins: dict[str, str]) -> dict[str, dict] | None:
    """name -> {version, wheel}: pip's resolution for this interpreter, or None where the pins conflict."""
    with tempfile.TemporaryDirectory() as scratch:
        constraints, report = Path(scratch) / "constraints.txt", Path(scratch) / "report.json"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                               "--report", str(report), "-c", str(constraints), *requirements],
                              capture_output=True, text=True, env=pip_environment())
        if done.returncode != 0:
            if "ResolutionImpossible" in done.stderr or "conflict" in done.stderr:
                return None
            raise SystemExit(f"pip could not resolve the project's dependencies:\n{done.stderr[-3000:]}")
        resolved = json.loads(report.read_text())["install"]
    return {canonical(item["metadata"]["name"]): {"version": item["metadata"]["version"],
                                                  "wheel": item["download_info"]["url"].endswith(".whl")}
            for item in resolved}


def pip_environment() -> dict[str, str]:
    """This interpreter's pip without a machine-wide constraint file (one capping torch would refuse 2.11)."""
    return {**os.environ, "PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def kit_packages(resolved: dict[str, dict], image: dict[str, str | None], pinned: bool) -> dict[str, dict]:
    """What the kit carries: every resolved package the image lacks and, when the pins did not hold, every
    image package whose resolved version differs from the one seen there."""
    return {name: item for name, item in resolved.items()
            if name not in image or (not pinned and image[name] not in (None, item["version"]))}


def download(name: str, item: dict, out: Path) -> Path:
    before = set(out.glob("*.whl"))
    spec = f"{name}=={item['version']}"
    if item["wheel"]:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.12", "--implementation", "cp", "-d", str(out), spec]
        for platform in PLATFORMS:
            command[-1:-1] = ["--platform", platform]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), spec]
    done = subprocess.run(command, capture_output=True, text=True, env=pip_environment())
    if done.returncode != 0:
        raise SystemExit(f"no wheel of {spec} for CPython 3.12 on manylinux x86-64:\n{done.stderr[-2000:]}")
    wheel = next(iter(set(out.glob("*.whl")) - before), None) or wheel_of(out, name, item["version"])
    if not item["wheel"] and not wheel.name.endswith("-py3-none-any.whl"):
        raise SystemExit(f"{spec} has no wheel on the registry and builds into {wheel.name}, not pure Python: "
                         "it cannot be carried to the card")
    return wheel


def wheel_of(out: Path, name: str, version: str) -> Path:
    """The wheel of name==version already in `out` (file names spell the name with underscores)."""
    stem = re.sub(r"[-_.]+", "_", name).lower() + "-" + version + "-"
    for wheel in out.glob("*.whl"):
        if wheel.name.lower().startswith(stem.lower()):
            return wheel
    raise SystemExit(f"pip reported success but left no wheel of {name}=={version} in {out}")


def tree_bytes() -> int:
    """Bytes of what travels with a device call besides the kit: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sum((REPO / p).stat().st_size for p in listed if p and (REPO / p).is_file())


def size_table(kit_bytes: int, tree: int, limit_mib: float) -> tuple[str, bool]:
    mib = 2 ** 20
    fits = kit_bytes + tree <= limit_mib * mib
    return ("| what | MiB |\n|---|---|\n"
            f"| the kit's wheels | {kit_bytes / mib:.1f} |\n| the working tree | {tree / mib:.1f} |\n"
            f"| together | {(kit_bytes + tree) / mib:.1f} |\n| the card machine's limit | {limit_mib:g} |\n"), fits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / ".whl", help="the kit's folder (git-ignored)")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    args = parser.parse_args()
    if sys.version_info[:2] != (3, 12):
        raise SystemExit(f"the kit is resolved by the card's Python, 3.12; this is {sys.version.split()[0]}: "
                         "run it with a python3.12 (make gpu-kit PYTHON312=/path/to/python3.12)")
    image = read_image()
    requirements = card_requirements()
    pins = {name: version for name, version in image.items() if version}
    resolved, pinned = resolve(requirements, pins), True
    if resolved is None:
        print("the versions seen on the card cannot satisfy the project: carrying the ones it needs instead")
        resolved, pinned = resolve(requirements, {}), False
    kit = kit_packages(resolved, image, pinned)
    args.out.mkdir(parents=True, exist_ok=True)
    wheels = {download(name, item, args.out) for name, item in sorted(kit.items())}
    for stale in set(args.out.glob("*.whl")) - wheels:
        stale.unlink()
    (args.out / "kit.txt").write_text("".join(f"{n}=={kit[n]['version']}\n" for n in sorted(kit)))
    (args.out / "image.txt").write_text("".join(f"{n}=={i['version']}\n" for n, i in sorted(resolved.items())
                                                if n not in kit))
    kit_bytes = sum(w.stat().st_size for w in wheels)
    table, fits = size_table(kit_bytes, tree_bytes(), args.limit_mib)
    print(f"{len(wheels)} wheels in {args.out} (list: kit.txt); the image's packages used: image.txt\n\n{table}")
    if not fits:
        print(f"the working tree and the kit exceed the card machine's {args.limit_mib:g} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
