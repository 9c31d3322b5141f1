#!/usr/bin/env bash
# Run the codesign command line, installing what it needs first (see scripts/bootstrap.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh"
exec "${CODESIGN_VENV:-$root/.venv}/bin/codesign" "$@"
