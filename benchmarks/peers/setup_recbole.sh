#!/usr/bin/env bash
# Create the separate virtual environment in which benchmarks/bench_speed.py
# times RecBole's LightGCN (benchmarks/peers/recbole_lightgcn.py).
#
# RecBole 1.2.1 needs versions the project does not use: numpy<1.24 (it still
# calls np.float), scipy<1.13 (its LightGCN builds the adjacency with
# dok_matrix._update, removed in SciPy 1.13) and pandas 1.x; so it gets its own
# venv and never touches the project's dependencies.
#
# Usage:  bash benchmarks/peers/setup_recbole.sh [VENV_DIR]
#   VENV_DIR  default: benchmarks/peers/.venv-recbole (git-ignored)
#   PYTHON    the interpreter to build the venv from (default: python3)
#   TORCH     the torch requirement installed first (default: torch==2.13.0,
#             the CPU wheel where pip finds one, as on the project's machines;
#             from PyPI alone a plain "torch" pulls gigabytes of CUDA libraries,
#             so point pip at https://download.pytorch.org/whl/cpu there, e.g.
#             PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv-recbole}"
python="${PYTHON:-python3}"
torch_req="${TORCH:-torch==2.13.0}"

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet)
"${pip[@]}" --upgrade pip
"${pip[@]}" "$torch_req"
"${pip[@]}" "recbole==1.2.1" "numpy<1.24" "scipy<1.13" "pandas<2" \
    "$torch_req"

# the import the benchmark needs, and the versions it will report
"$venv/bin/python" - <<'PY'
import numpy, pandas, scipy, torch
import recbole
from recbole.model.general_recommender import LightGCN  # noqa: F401
from recbole.trainer import Trainer  # noqa: F401
print(f"recbole {recbole.__version__}, torch {torch.__version__}, numpy "
      f"{numpy.__version__}, scipy {scipy.__version__}, pandas {pandas.__version__}")
PY
echo "RecBole venv ready: $venv"
