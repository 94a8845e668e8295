#!/usr/bin/env bash
# Create the separate virtual environment in which
# benchmarks/peers/resn_reference.py runs the ReSN authors' code
# (LIN452/ReSN, WSDM 2025) as it is.
#
# Their code is TensorFlow 1.x (tf.placeholder, tf.Session, tf.contrib); their
# requirements.txt pins numpy==1.16.2, pandas==0.24.2, scikit-learn==0.20.3 and
# tensorflow==1.15.0, which need Python 3.7. None of it touches the project's
# own environment. tensorflow-cpu==1.15.0 is the same code as tensorflow==1.15.0
# without the CUDA kernels (a 110 MB wheel instead of 412 MB); set TF to change
# it. requirements.txt does not list scipy and matplotlib, which their
# trainer.py imports; scipy<1.3 and matplotlib<3.1 are the releases of their
# pins' time that install beside numpy 1.16.2. protobuf<3.21: TensorFlow 1.15
# fails to import with protobuf 4. plotly and mlflow (pinned too) are never
# imported on the path that trains and are left out.
#
# Usage:  bash benchmarks/peers/setup_resn.sh [VENV_DIR]
#   VENV_DIR  default: benchmarks/peers/.venv-resn (git-ignored)
#   PYTHON    a Python 3.7 interpreter (default: python3.7)
#   TF        the TensorFlow requirement (default: tensorflow-cpu==1.15.0)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv-resn}"
python="${PYTHON:-python3.7}"
tf_req="${TF:-tensorflow-cpu==1.15.0}"

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet)
"${pip[@]}" --upgrade "pip<24"
"${pip[@]}" "numpy==1.16.2" "pandas==0.24.2" "scikit-learn==0.20.3" \
    "scipy<1.3" "matplotlib<3.1" "pyyaml==5.1" "protobuf<3.21" "$tf_req"

"$venv/bin/python" - <<'PY'
import numpy, pandas, scipy, sklearn, tensorflow as tf
tf.contrib.layers.xavier_initializer  # their models use tf.contrib
print(f"tensorflow {tf.__version__}, numpy {numpy.__version__}, pandas "
      f"{pandas.__version__}, scipy {scipy.__version__}, scikit-learn "
      f"{sklearn.__version__}")
PY
echo "ReSN venv ready: $venv"
