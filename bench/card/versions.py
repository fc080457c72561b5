"""What the acceptance run runs with: Python, torch, CUDA, the card, and every package the project needs.

    python bench/card/versions.py [--site /tmp/moa-site]

One row per distribution the project needs (its dependencies, with `[tool.moa.card]`'s ranges, and what
they need in turn): the version found, whether it came from the kit or the machine's image, and whether it
satisfies every requirement on it. Exits 1 if a dependency is missing or out of range; the runner says so
and goes on (a declared range can be stricter than the code needs), so the table explains a failure below.
"""
from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kit import canonical, card_requirements  # noqa: E402


def installed() -> dict[str, metadata.Distribution]:
    """The first distribution of each name on sys.path, as `import` would find it."""
    found = {}
    for dist in metadata.distributions():
        found.setdefault(canonical(dist.metadata["Name"]), dist)
    return found


def requirement_rows(roots: list[str], dists: dict[str, metadata.Distribution], kit: Path) -> list[dict]:
    """The closure of `roots` over the installed distributions' requirements (extras and markers honoured)."""
    environment = default_environment()
    wanted: dict[str, list[tuple[str, Requirement]]] = {}
    queue = [("moa", Requirement(r)) for r in roots]
    while queue:
        parent, requirement = queue.pop()
        name = canonical(requirement.name)
        first = name not in wanted
        wanted.setdefault(name, []).append((parent, requirement))
        if first and name in dists:
            for line in dists[name].requires or []:
                child = Requirement(line)
                if child.marker is None or any(child.marker.evaluate({**environment, "extra": extra})
                                               for extra in requirement.extras or {""}):
                    queue.append((name, child))
    rows = []
    for name in sorted(wanted):
        dist = dists.get(name)
        version = dist.version if dist else None
        unmet = [f"{parent} needs {req.specifier}" for parent, req in wanted[name]
                 if version is None or not req.specifier.contains(version, prereleases=True)]
        where = "missing" if dist is None else ("kit" if str(kit) in str(dist.locate_file("")) else "image")
        rows.append({"package": name, "version": version or "-", "from": where, "ok": not unmet,
                     "unmet": "; ".join(unmet)})
    return rows


def card_lines() -> list[str]:
    import torch

    lines = [f"python {platform.python_version()} ({sys.executable})", f"torch {torch.__version__}, "
             f"built for CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            lines.append(f"card {index}: {props.name}, compute capability {props.major}.{props.minor}, "
                         f"{props.total_memory / 2**30:.0f} GiB")
    else:
        lines.append("card: none visible to torch")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=Path("/nonexistent"), help="where the kit was installed")
    args = parser.parse_args()
    print("\n".join(card_lines()) + "\n")
    rows = requirement_rows(card_requirements(), installed(), args.site.resolve())
    print("| package | version | from | ok | unmet |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['package']} | {row['version']} | {row['from']} | {row['ok']} | {row['unmet']} |")
    bad = [row["package"] for row in rows if not row["ok"]]
    print(f"\n{len(rows)} packages; " + (f"NOT satisfied: {', '.join(bad)}" if bad else "every requirement satisfied"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
