#!/usr/bin/env bash
# Create (or rebuild) the course's venv with a Python TensorFlow 2.21 has wheels for, and put the
# locked uv in it. Called by the Makefile: tools/venv.sh PYTHON VENV UV_REQUIREMENT
# PYTHON may be empty (none of python3.11/3.12/3.13 found on PATH).
set -euo pipefail
python=$1 venv=$2 uv_req=$3
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

if [ -z "$python" ] || ! command -v "$python" >/dev/null; then
  if [ -n "$python" ]; then echo "error: $python not found." >&2; else echo "error: none of python3.11, python3.12, python3.13 runs here." >&2; fi
  echo "forgekit needs Python 3.11, 3.12 or 3.13 (TensorFlow 2.21 publishes wheels for those);" >&2
  echo "install one, or name it: make test PYTHON=/path/to/python3.12" >&2
  exit 1
fi
want=$(version "$python") || want=""
case "$want" in
  3.11|3.12|3.13) ;;
  "") echo "error: $python does not run here ($("$python" --version 2>&1 | head -n 1))" >&2
     exit 1 ;;
  *) echo "error: $python is Python $want; forgekit needs 3.11, 3.12 or 3.13" \
          "(TensorFlow 2.21 publishes wheels for those): make test PYTHON=/path/to/python3.12" >&2
     exit 1 ;;
esac
if [ -x "$venv/bin/python" ]; then
  have=$(version "$venv/bin/python") || have="unknown"
  if [ "$have" != "$want" ]; then
    # Only a venv this Makefile built (it holds the stamp) is replaced; anything else is kept.
    if [ -e "$venv/.installed" ]; then
      echo "$venv runs Python $have; rebuilding it with $python ($want)"
      rm -rf "$venv"
    else
      echo "error: $venv runs Python $have, not $want, and was not built by make" \
           "(no $venv/.installed): move it away, or run make with PYTHON=python$have" >&2
      exit 1
    fi
  fi
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
[ -x "$venv/bin/uv" ] || "$venv/bin/python" -m pip install --quiet "$uv_req"
