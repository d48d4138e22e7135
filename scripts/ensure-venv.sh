#!/usr/bin/env bash
# Creates the virtualenv (Python 3.11), installs the exact pins of requirements.lock and the screenreel CLI (cli/).
set -euo pipefail
venv="${1:-.venv}"

python=""
for py in python3.11 python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    python="$py"; break
  fi
done
[ -n "$python" ] || { echo "Python 3.11 is needed (run scripts/ensure-sysdeps.sh)"; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  echo "Creating $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
echo "Installing pinned Python packages (requirements.lock)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements.lock
# The `screenreel` CLI (cli/, standard library only) as an editable install, so .venv/bin/screenreel runs this
# checkout's code; installing it again is a no-op in effect, so this step is safe to repeat.
echo "Installing the screenreel CLI (cli/)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e ./cli
