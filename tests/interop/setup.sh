#!/usr/bin/env bash
# Installs the Python peer of the interop tests: a virtualenv in target/interop-venv with the
# pinned packages of tests/interop/requirements.txt, and prints its interpreter's path.
#
#   export INTEROP_PYTHON="$(tests/interop/setup.sh)"
#   cargo test --workspace --test interop_http -- --ignored
#
# Idempotent and quiet: once the virtualenv has these requirements, it does nothing but print.
# Needs python3 (with venv and pip) and access to PyPI the first time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/../../target/interop-venv"
requirements="$here/requirements.txt"
# A copy of the requirements last installed, written once they all are.
installed="$venv/requirements.installed.txt"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$installed"; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$installed"
fi
echo "$(cd "$venv" && pwd)/bin/python"
