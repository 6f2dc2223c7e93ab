#!/usr/bin/env bash
# Installs what the project needs on a fresh machine, idempotently:
#   - uv (pinned) in a project-local tool venv, from PyPI;
#   - the locked Python environment of the workspace (.venv);
# and, unless called as `bootstrap.sh demo` (the demo needs only the two above), what the tests
# need besides:
#   - the workspace's dev dependencies (pytest, Playwright, ...) in the same .venv;
#   - checkov, pinned, in a venv of its own (.tools/checkov);
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
    # The machine's pip installs into a venv without pip of its own (pip 22.3 and later):
    # putting pip there first (ensurepip) takes longer than installing uv.
    python3 -m venv --without-pip "$TOOLS"
    if ! python3 -m pip --python "$TOOLS/bin/python" install --quiet \
        --disable-pip-version-check "uv==$UV_VERSION" 2>/dev/null; then
        "$TOOLS/bin/python" -m ensurepip --default-pip >/dev/null
        "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    fi
fi

if [[ "${1:-}" == demo ]]; then
    # --inexact keeps the dev dependencies of an earlier `make test` instead of removing them.
    "$TOOLS/bin/uv" sync --frozen --all-packages --no-dev --inexact --quiet --project "$ROOT"
    exit 0
fi
"$TOOLS/bin/uv" sync --frozen --all-packages --quiet --project "$ROOT"

# checkov lints the Kubernetes manifests (tests/unit/test_kubernetes_hardening.py). It lives in
# a venv of its own because its many pinned dependencies would fight the workspace's lock; it is
# installed again only when deploy/local/checkov-requirements.txt changes.
CHECKOV_VENV="$TOOLS/checkov"
CHECKOV_REQUIREMENTS="$ROOT/deploy/local/checkov-requirements.txt"
checkov_stamp="$(sha256sum "$CHECKOV_REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -x "$CHECKOV_VENV/bin/checkov" ]] \
    || [[ "$(cat "$CHECKOV_VENV/.requirements-sha256" 2>/dev/null)" != "$checkov_stamp" ]]; then
    echo "bootstrap: installing checkov into $CHECKOV_VENV" >&2
    "$TOOLS/bin/uv" venv --quiet --clear --python 3.11 "$CHECKOV_VENV"
    "$TOOLS/bin/uv" pip sync --quiet --compile-bytecode --python "$CHECKOV_VENV/bin/python" \
        "$CHECKOV_REQUIREMENTS"
    echo "$checkov_stamp" > "$CHECKOV_VENV/.requirements-sha256"
fi

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
