# Sourced by scripts/demo and scripts/test: create .venv with Python 3.12+ (Django 6 needs it) and
# install the project into it. PYTHON names the interpreter (default python3.12).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3.12}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    # Under pyenv, `python3.12` is a shim that answers only when 3.12 is selected; use the install itself.
    found=""
    if command -v pyenv >/dev/null 2>&1; then
        for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -rV); do
            candidate="$(pyenv root)/versions/$version/bin/python3"
            if [ -x "$candidate" ]; then found="$candidate"; break; fi
        done
    fi
    if [ -z "$found" ]; then
        echo "Threadsite needs Python 3.12 or newer: set PYTHON to one (e.g. PYTHON=python3.13)." >&2
        exit 1
    fi
    echo "$PYTHON is not runnable here; using $found" >&2
    PYTHON="$found"
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
target="."
if [ -n "${EXTRAS:-}" ]; then target=".[${EXTRAS}]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
