#!/usr/bin/env bash
# Wheels the GPU machine lacks for benchmarks/gpu_check.py, in .whl/ (git-ignored), sized against the
# 64 MiB that one device call carries (the working tree + the carried .whl/ together).
#
#   scripts/gpu_wheels.sh                  # here, where PyPI is reachable: download, build, print sizes
#   scripts/gpu_wheels.sh --slim           # also strip bitsandbytes to its CPU + CUDA 13 libraries (-34 MiB)
#   scripts/gpu_wheels.sh --budget-mib 48  # a smaller budget (something else is carried too)
#   scripts/gpu_wheels.sh --from DIR       # offline, from a folder of wheels (pip --find-links)
#   scripts/gpu_wheels.sh --out DIR        # somewhere else than .whl/
# Over budget, bitsandbytes is slimmed first, then optional wheels are dropped (last listed first);
# exit status 1 when even the essential ones do not fit.
#
# The GPU machine (as listed for it): Python 3.12, torch 2.11 + CUDA 13, transformers 5.17, peft,
# accelerate 1.15, pandas, pyarrow, scikit-learn, typer, huggingface-hub 1.33, fsspec, xxhash; no trl,
# datasets, bitsandbytes, evaluate, skops; no network. What is carried and why:
#   - trl, datasets (+ dill, multiprocess): the project's trainer is TRL's SFTTrainer;
#   - transformers 5.24: TRL 1.16 refuses assistant-only loss on vision data below transformers 5.18
#     ("Assistant-only loss for vision datasets requires transformers>=5.18.0"), and 5.24 is what the
#     test suite passes with; it still accepts the machine's huggingface-hub 1.33 and tokenizers 0.23;
#   - the project itself, as a wheel built here from this repository (the machine has no hatchling to
#     build it there), installed --no-deps;
#   - bitsandbytes: QLoRA (4-bit NF4) and paged 8-bit AdamW; without it the check skips QLoRA and
#     trains LoRA with plain AdamW;
#   - peft, fsspec: the versions tested here (the machine's own are used when they do not fit);
#   - evaluate, skops (+ prettytable, wcwidth), iterative-stratification: not used by the check, only by
#     the rest of the project (metrics, baseline persistence, review splits); dropped first.
#   Not carried: typer (there already), vLLM (a wheel of hundreds of MB), Unsloth (pins its own
#   torch / transformers), DeepSpeed (source only, compiled there): the check says "skipped: ..." for them.
#
# On the GPU machine, in the repository root, with carry [".whl"] (one command, about 8 minutes at most):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
#   PYTHONUNBUFFERED=1 timeout 480 python3 benchmarks/gpu_check.py --out "$OUT/gpu_check"
# Results: $OUT/gpu_check/gpu_check.json and gpu_check.md (see README, "GPU check").
set -euo pipefail

cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
WHL=.whl
BUDGET_MIB=64
SLIM=0
FROM=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --slim) SLIM=1 ;;
        --budget-mib) BUDGET_MIB=$2; shift ;;
        --from) FROM=(--no-index --find-links "$2"); shift ;;
        --out) WHL=$2; shift ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# Priority order: when the total is over budget the LAST ones are dropped first (after --slim).
# "name==version|essential" marks what the check cannot run without.
PACKAGES=(
    "trl==1.16.0|essential"
    "datasets==5.2.0|essential"
    "dill==0.4.1|essential"
    "multiprocess==0.70.19|essential"
    "transformers==5.24.0|essential"
    "bitsandbytes==0.50.2|"
    "peft==0.21.2|"
    "fsspec==2026.9.0|"
    "iterative-stratification==0.1.9|"
    "skops==0.16.0|"
    "prettytable==3.18.0|"
    "wcwidth==0.9.4|"
    "evaluate==0.4.6|"
)
SPECS=()
for entry in "${PACKAGES[@]}"; do SPECS+=("${entry%%|*}"); done

mkdir -p "$WHL"
rm -f "$WHL"/*.whl "$WHL"/*.slim  # only wheels: --out may name a folder that holds other things
echo "downloading ${#SPECS[@]} wheels into $WHL/ (Python 3.12, manylinux x86_64) ..."
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --platform any ${FROM[@]+"${FROM[@]}"} -d "$WHL" "${SPECS[@]}"

echo "building the project's wheel from this repository ..."
# Offline with the dev extra's hatchling; else pip fetches the build backend (network needed here only).
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$WHL" . 2>/dev/null \
    || "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$WHL" .

"$PY" - "$WHL" "$BUDGET_MIB" "$SLIM" "${PACKAGES[@]}" <<'PYEOF'
"""Sizes against the budget; slim bitsandbytes and drop optional wheels (last first) until it fits."""
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

whl, budget_mib, slim = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
packages = [p.split("|") for p in sys.argv[4:]]
budget = int(budget_mib * 1024 * 1024)
MIB = 1024 * 1024
WHY_OPTIONAL = {
    "bitsandbytes": "the check skips QLoRA and trains LoRA with plain AdamW (no paged 8-bit AdamW)",
    "peft": "the machine's own peft is used (untested with transformers 5.24)",
    "fsspec": "the machine's own fsspec is used by datasets",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_of(name: str) -> Path | None:
    found = [p for p in whl.glob("*.whl") if norm(p.name.split("-")[0]) == norm(name)]
    return found[0] if found else None


def repo_bytes() -> int:
    """What a device call sends besides the carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode()
    files = {f for f in out.split("\0") if f}
    if Path("shared").is_dir():  # travels even where ignored
        files |= {str(p) for p in Path("shared").rglob("*") if p.is_file()}
    return sum(os.path.getsize(f) for f in files if os.path.isfile(f))


def slim_bitsandbytes(path: Path) -> int:
    """Keep only bitsandbytes' CPU and CUDA 13.x libraries (the machine runs torch +cu130)."""
    keep = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
    drop = {n for n in zipfile.ZipFile(path).namelist() if n.endswith(".so") and not keep.search(n)}
    before = path.stat().st_size
    tmp = path.with_suffix(".slim")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in drop:
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if line.split(",")[0] not in drop).encode()
            dst.writestr(info, data)
    tmp.replace(path)
    return before - path.stat().st_size


repo = repo_bytes()
notes = []
bnb = wheel_of("bitsandbytes")
if bnb is not None and (slim or repo + sum(p.stat().st_size for p in whl.glob("*.whl")) > budget):
    saved = slim_bitsandbytes(bnb)
    notes.append(f"bitsandbytes slimmed to its CPU + CUDA 13 libraries ({saved / MIB:.1f} MiB less)")
for name, essential in reversed(packages):
    total = repo + sum(p.stat().st_size for p in whl.glob("*.whl"))
    if total <= budget:
        break
    path = wheel_of(name.split("==")[0])
    if essential or path is None:
        continue
    path.unlink()
    why = WHY_OPTIONAL.get(norm(name.split("==")[0]), "not used by the check")
    notes.append(f"does not fit: {name} dropped ({why})")

rows = sorted(whl.glob("*.whl"), key=lambda p: -p.stat().st_size)
width = max(len(p.name) for p in rows)
print(f"\n{'file':<{width}}  {'MiB':>7}")
for p in rows:
    print(f"{p.name:<{width}}  {p.stat().st_size / MIB:7.2f}")
wheels = sum(p.stat().st_size for p in rows)
total = repo + wheels
print(f"{'wheels (' + str(len(rows)) + ' files)':<{width}}  {wheels / MIB:7.2f}")
print(f"{'working tree (tracked + untracked, not ignored)':<{width}}  {repo / MIB:7.2f}")
print(f"{'total carried':<{width}}  {total / MIB:7.2f}  of {budget_mib:g} MiB ({(budget - total) / MIB:.2f} MiB left)")
for line in notes:
    print(line)
missing = [n for n, e in packages if e and wheel_of(n.split("==")[0]) is None]
if wheel_of("hf_spamguard") is None:
    missing.append("hf-spamguard (the project's wheel)")
if missing or total > budget:
    print(f"DOES NOT FIT: essential wheels missing {missing} or total over budget", file=sys.stderr)
    sys.exit(1)
print("fits: carry [\".whl\"] with the command at the top of scripts/gpu_wheels.sh")
PYEOF
