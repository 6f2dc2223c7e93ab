"""Chromium for the console's browser tests: Debian's package, driven by Playwright (no browser
download: the executable path is set), and a folder for the screenshots the tests save."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """CHROMIUM, else Debian's chromium on PATH (deploy/local/bootstrap.sh installs it)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError("chromium is missing: deploy/local/bootstrap.sh installs it (apt)")
    return path


def artifacts_dir() -> Path:
    """Where screenshots go: ARTIFACTS_DIR, else tmp/artifacts in the repo (not committed)."""
    path = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "tmp" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
