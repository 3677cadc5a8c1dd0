#!/usr/bin/env bash
# Create a virtual environment and install sklearn-medprep for development in it.
#
#   bash tools/install.sh                    # ./.venv, newest numpy 2 / pandas
#   STACK=numpy1 VENV=.venv-numpy1 bash tools/install.sh
#                                            # numpy 1.26 / pandas 2 + neuroHarmonize
#
# Steps (pip's own progress lines are shown: the torch step can take minutes):
#  1. torch. What pip installs for `torch` depends on the platform:
#       - Linux x86_64, from PyPI: the CUDA build, about 900 MB for torch itself plus
#         about 15 nvidia-* / triton packages, roughly 5-6 GB on disk in all;
#       - macOS and Windows, from PyPI: a CPU build (a few hundred MB);
#       - the CPU-only Linux build (about 200 MB download) comes from PyTorch's own
#         index: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash tools/install.sh
#     A wheel already in pip's configured find-links (e.g. a local CPU wheel) is used
#     as is. TORCH_VERSION (default 2.13.0) pins the version.
#  2. this package in editable mode with the `dev` extra: every optional feature
#     (`all`: torchio, plot, skorch, dask, lbp, parquet), tests, docs, build, twine.
#     PyRadiomics comes from `pyradiomics-bhklab` (import name `radiomics`), which
#     PyPI holds as source only: pip compiles it, so a C compiler and the Python
#     headers are needed (gcc/python3-dev on Linux, the Xcode command line tools on
#     macOS, Microsoft C++ Build Tools on Windows); see README.
#  3. the reference ComBat, neuroHarmonize 2.5.2, whose metadata pins numpy<2 and
#     pandas<3: with STACK=numpy1 through the `neuroharmonize` extra (pins obeyed);
#     with the default STACK=latest it is not installed (its parity tests then skip:
#     neuroHarmonize fails on numpy >= 2.4, see README "Supported versions").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
STACK="${STACK:-latest}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-}"

step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# PINS: constraints of a stack that the extras cannot state. pyarrow 26 needs
# numpy >= 2 at import time but does not say so in its metadata, so pip would
# pair it with neuroHarmonize's numpy 1.26: the numpy 1 stack takes pyarrow < 26.
PINS=()
case "$STACK" in
    latest) EXTRAS="dev,survival,mirp" ;;
    numpy1) EXTRAS="dev,neuroharmonize"; PINS=("pyarrow<26") ;;
    *) echo "STACK must be 'latest' or 'numpy1', got '$STACK'" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV with $("$PYTHON" --version 2>&1) ($PYTHON)"
    "$PYTHON" -m venv "$VENV"
fi
INSTALL=("$VENV/bin/python" -m pip --disable-pip-version-check install --progress-bar on)
step "upgrading pip"
"${INSTALL[@]}" --upgrade pip

step "installing torch==${TORCH_VERSION} (see the notes at the top of this script)"
if [ -n "$TORCH_INDEX_URL" ]; then
    "${INSTALL[@]}" "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"
else
    "${INSTALL[@]}" "torch==${TORCH_VERSION}"
fi

step "installing sklearn-medprep in editable mode with extras [$EXTRAS] (stack: $STACK)"
"${INSTALL[@]}" -e ".[$EXTRAS]" "torch==${TORCH_VERSION}" ${PINS[@]+"${PINS[@]}"}

"$VENV/bin/python" - <<'PY'
import importlib.util

import numpy, pandas, pyarrow, radiomics, sklearn, skorch, torch, torchio

nh = importlib.util.find_spec("neuroHarmonize") is not None
print(
    f"sklearn-medprep environment ready: numpy {numpy.__version__}, "
    f"pandas {pandas.__version__}, torch {torch.__version__}, "
    f"torchio {torchio.__version__}, pyradiomics {radiomics.__version__}, "
    f"scikit-learn {sklearn.__version__}, skorch {skorch.__version__}, "
    f"neuroHarmonize {'installed' if nh else 'not installed'}"
)
PY
touch "$VENV/.installed"
