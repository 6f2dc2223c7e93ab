#!/usr/bin/env bash
# Installs what the project needs on a fresh machine, idempotently:
#   - uv (pinned) in a project-local tool venv, from PyPI;
#   - the locked Python environment of the workspace (.venv);
#   - kcat from Debian's packages (tests list topics with it), when root;
#   - chromium from Debian's packages (the console's browser tests drive it), when root.
# PostgreSQL and the Kafka jars are fetched by `stack up` itself.
set -euo pipefail

UV_VERSION=0.13.8
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
export UV_PYTHON_DOWNLOADS=never

if [[ ! -x "$TOOLS/bin/uv" ]] || [[ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]]; then
    echo "bootstrap: installing uv $UV_VERSION into $TOOLS" >&2
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

"$TOOLS/bin/uv" sync --frozen --all-packages --quiet --project "$ROOT"

install_deb() {  # command, package, why
    if command -v "$1" >/dev/null 2>&1; then
        return
    fi
    if [[ "$(id -u)" == 0 ]]; then
        echo "bootstrap: installing $2 from Debian's packages ($3)" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    else
        echo "bootstrap: $1 is missing and this is not root; install the $2 package" >&2
    fi
}

install_deb kcat kcat "tests list topics with it"
install_deb chromium chromium "the console's browser tests drive it"
