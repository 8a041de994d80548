#!/usr/bin/env bash
# The wheels `make gpu-check` needs on a lent GPU machine that has no internet (docs/gpu.md), into .whl/ (git-ignored
# through .git/info/exclude), under the 64 MiB a call may carry with the working tree.
#
#   scripts/gpu_wheels.sh            # then, on the GPU machine (the device tool's run, carry [".whl"]):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD python3 scripts/gpu_check.py --out /tmp/gc --report $OUT/gpu.md
#
# The machine's image holds torch (CUDA 13), numpy, pandas, pyarrow, safetensors and the like; these are the t2s
# dependencies it lacks or holds too old, at the versions of this project's own virtualenv. bitsandbytes ships one
# library per CUDA version (129 MB unpacked); only the CUDA 13 ones (the image's torch is cu130) and the CPU one are
# kept, so the wheel fits. vLLM (hundreds of MB) cannot be carried: the vLLM checks run where it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo /.whl/ >> .git/info/exclude; }
rm -rf .whl && mkdir -p .whl
version() { "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
PACKAGES="transformers trl bitsandbytes datasets evaluate sqlparse sqlglot llguidance gguf SQLAlchemy dill multiprocess
huggingface_hub peft accelerate tokenizers regex kernels httpx2 httpcore2 truststore tomlkit click"
for name in $PACKAGES; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 \
    -d .whl "$name==$(version "$name")" 2>&1 | grep -v "^WARNING: Location" || true
done
wheel=$(ls .whl/bitsandbytes-*.whl)
zip -q -d "$wheel" 'bitsandbytes/libbitsandbytes_cuda11*' 'bitsandbytes/libbitsandbytes_cuda12*' \
  'bitsandbytes/libbitsandbytes_rocm*' 'bitsandbytes/libbitsandbytes_xpu*'
work=$(mktemp -d)
unzip -q -o "$wheel" '*/RECORD' -d "$work"
record=$(ls "$work"/*/RECORD)
grep -vE 'libbitsandbytes_(cuda11|cuda12|rocm|xpu)' "$record" > "$record.kept" && mv "$record.kept" "$record"
(cd "$work" && zip -q "$OLDPWD/$wheel" */RECORD)
rm -rf "$work"
du -sh .whl
