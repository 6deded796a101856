#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) from the repository root, its report into $OUT
# where the device tool sets it: bash benchmarks/gpu_check.sh [--dry]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONUNBUFFERED=1 exec python3 benchmarks/gpu_check.py --out "${OUT:-gpu-check}" "$@"
