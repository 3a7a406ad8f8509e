# Sourced by scripts/demo and scripts/test: create .venv with Python 3.12+ (Django 6 needs it) and
# install the project into it. PYTHON names the interpreter (default python3.12).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3.12}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    # Under pyenv, `python3.12` is a shim that answers only when 3.12 is selected; use the install itself.
    found=""
    wanted="${PYTHON#python}"  # python3.12 -> 3.12: that version first, then any newer one
    if command -v pyenv >/dev/null 2>&1; then
        versions=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -rV)
        for version in $(grep -F "$wanted." <<<"$versions") $versions; do
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
target="."
if [ -n "${EXTRAS:-}" ]; then target=".[${EXTRAS}]"; fi
# This machine's pip configuration names local indexes that may be absent; pip warns once per package.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target" 2>&1 \
    | { grep -v "is neither a file nor a directory" || true; }
