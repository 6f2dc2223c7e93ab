#!/usr/bin/env bash
# Installs what the project needs on a fresh machine, idempotently:
#   - uv (pinned) in a project-local tool venv, from PyPI;
#   - the locked Python environment of the workspace (.venv);
#   - kcat from Debian's packages (tests list topics with it), when root;
#   - chromium from Debian's packages (the console's browser tests drive it), when root;
#   - prometheus and promtool from Debian's packages (observability tests), when root.
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

# Prometheus and promtool: the observability tests scrape the services with a real Prometheus
# and check the shipped config and rules. The package's own service is not left running: the
# tests start their own on a free port with their own data directory.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]]; then
        echo "bootstrap: installing prometheus from Debian's packages" >&2
        # Debian's policy-rc.d hook (exit 101) tells the package not to start its service.
        own_policy=""
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            own_policy=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' > "$own_policy" && chmod +x "$own_policy"
        fi
        installed=0
        apt-get update -qq >/dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                prometheus >/dev/null \
            || installed=$?
        if [[ -n "$own_policy" ]]; then rm -f "$own_policy"; fi
        if [[ "$installed" != 0 ]]; then
            echo "bootstrap: installing prometheus failed" >&2
            exit "$installed"
        fi
        if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet prometheus 2>/dev/null; then
            systemctl disable --now prometheus >/dev/null 2>&1 || true
        fi
    else
        echo "bootstrap: prometheus is missing and this is not root; install the prometheus package" >&2
    fi
fi
