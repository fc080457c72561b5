#!/usr/bin/env bash
# The acceptance run on a card machine without network: the command a session sends there.
#
#   bench/card/run.sh [bench/gpu.py's arguments]       # from the repository root, the kit (make gpu-kit) in .whl
#
# It installs the kit with --no-index --no-deps --target (nothing is fetched), puts src/ on the path,
# prints what it runs with (bench/card/versions.py) and runs bench/gpu.py within LIMIT seconds. Both
# outputs are written under OUT (the device tool's $OUT; bench-results/card elsewhere): versions.md,
# gpu.log. Settings, from the environment:
#   PYTHON  the interpreter that holds the machine's torch (default python3)
#   KIT     the kit's folder (default .whl)
#   SITE    where the kit is installed (default /tmp/moa-site)
#   LIMIT   seconds for bench/gpu.py (default 450: with the machine's start, one rerun still fits in a
#           15-minute lease; bench/gpu.py on an H200 is sized to 8 minutes)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
PYTHON=${PYTHON:-python3}
KIT=${KIT:-.whl}
SITE=${SITE:-/tmp/moa-site}
LIMIT=${LIMIT:-450}
OUT=${OUT:-bench-results/card}
mkdir -p "$OUT"

shopt -s nullglob
wheels=("$KIT"/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
    echo "no wheels in $KIT: build the kit with 'make gpu-kit' and carry it (carry: [\"$KIT\"])" >&2
    exit 2
fi
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --disable-pip-version-check --target "$SITE" "${wheels[@]}" || exit 2
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"
export PYTHONUNBUFFERED=1

"$PYTHON" bench/card/versions.py --site "$SITE" | tee "$OUT/versions.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || echo "(some requirements are not satisfied: the table above says which; going on)"
echo
timeout --kill-after=10 "$LIMIT" "$PYTHON" bench/gpu.py "$@" 2>&1 | tee "$OUT/gpu.log"
status=${PIPESTATUS[0]}
[ "$status" -ne 124 ] && [ "$status" -ne 137 ] || echo "bench/gpu.py ran past $LIMIT s and was stopped"
exit "$status"
