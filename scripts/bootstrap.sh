#!/usr/bin/env bash
# Make .venv ready to run codesign and its tests, on a machine with only Python 3.11+.
#
# torch: an installed torch >= 2.2 (CPU or CUDA build) is kept. Otherwise, where an NVIDIA
# GPU answers `nvidia-smi -L`, torch comes from the package index (with its CUDA packages);
# where none does, the CPU build torch==2.13.0 is installed, so no CUDA packages are
# downloaded. Override with CODESIGN_TORCH="torch==X.Y.Z" (and PIP_INDEX_URL / PIP_EXTRA_INDEX_URL
# for another wheel source). Re-running is cheap: nothing is installed while pyproject.toml
# is unchanged.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CODESIGN_VENV:-$root/.venv}
python=${PYTHON:-python3}
stamp="$venv/.codesign-installed"
want=$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/codesign" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
if ! "$vpy" - <<'PY' 2>/dev/null
import sys, torch
major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
sys.exit(0 if (major, minor) >= (2, 2) else 1)
PY
then
  if [ -n "${CODESIGN_TORCH:-}" ]; then
    spec=$CODESIGN_TORCH
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    spec="torch>=2.2"
  else
    spec="torch==2.13.0"   # CPU build where the wheel source has it; see the header
  fi
  echo "bootstrap: installing $spec" >&2
  "$vpy" -m pip install --quiet "$spec"
fi
echo "bootstrap: installing codesign and its test dependencies" >&2
# Keep the torch that is there: torchvision (the importers' extra) is resolved to the build that matches it,
# instead of pulling a newer torch (and, unpinned, its CUDA packages).
constraints="$venv/.codesign-torch-constraint.txt"
"$vpy" -c 'import torch; print("torch==" + torch.__version__)' > "$constraints"
"$vpy" -m pip install --quiet -c "$constraints" -e "$root[test]"
echo "$want" > "$stamp"
