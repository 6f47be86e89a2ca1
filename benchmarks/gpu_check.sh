#!/usr/bin/env bash
# The one prepared GPU check: every GPU figure in one run (benchmarks/gpu_check.py says which), for a session that
# is lent a GPU. The GPU image has Python 3.12 with torch, numpy, scipy, onnxruntime, matplotlib and rich, but not
# optuna, sqlalchemy, fvcore or a recent typer: their wheels travel in .whl/ (git-ignored, carried).
#
#   here, once:  bash benchmarks/gpu_check.sh --wheels        # downloads the wheels into .whl/ (about 8 MB)
#   there:       device run, carry [".whl"], timeout_s 540:
#                bash benchmarks/gpu_check.sh --out "$OUT"       # about 6 minutes; the last block is the note's
#   anywhere:    bash benchmarks/gpu_check.sh --target cpu --quick --out /tmp/check   # a dry run of every step
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--wheels" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  rm -rf .whl && mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    optuna==5.0.0 alembic==1.20.1 Mako==1.4.3 colorlog==6.12.0 sqlalchemy==2.1.9 yacs==0.1.8 termcolor==3.3.0 \
    typer==0.29.2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    annotated-doc==0.0.7 shellingham==1.5.4
  python3 -m pip download -q --no-deps --no-binary=:all: -d .whl fvcore==0.1.5.post20221221 iopath==0.1.10
  python3 -m pip wheel -q --no-deps .whl/*.tar.gz -w .whl && rm .whl/*.tar.gz  # pure Python: built here
  du -sh .whl
  exit 0
fi
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
python3 benchmarks/gpu_check.py "$@"
