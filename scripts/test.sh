#!/usr/bin/env bash
# Run the test suite (pytest), installing what it needs first (see scripts/bootstrap.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh"
cd "$root"
exec "${CODESIGN_VENV:-$root/.venv}/bin/python" -m pytest "$@"
