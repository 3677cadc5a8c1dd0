#!/usr/bin/env bash
# Create ./.venv and install sklearn-medprep with everything it needs, on a fresh machine.
#
#  1. torch is installed first and pinned (CPU build): an unpinned torch, asked for by
#     torchio or skorch, would pull a CUDA build of several GB.
#  2. the package itself in editable mode with the `dev` extra. PyRadiomics comes from
#     `pyradiomics-bhklab` (same code, import name `radiomics`), which builds with plain
#     pip on Python 3.10-3.13; see README "Why pyradiomics-bhklab".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip
"${PIP[@]}" install --quiet "torch==${TORCH_VERSION}"
"${PIP[@]}" install --quiet -e ".[dev]"
"$VENV/bin/python" - <<'PY'
import numpy, radiomics, neuroHarmonize, torch, torchio, skorch, sklearn
print(
    f"sklearn-medprep environment ready: numpy {numpy.__version__}, torch {torch.__version__}, "
    f"torchio {torchio.__version__}, pyradiomics {radiomics.__version__}, "
    f"scikit-learn {sklearn.__version__}, skorch {skorch.__version__}"
)
PY
touch "$VENV/.installed"
