"""Readiness probe for containers: `python -m contracts.probe [URL]` exits 0 when the service's
metrics say `automation_service_ready 1`, else 1. Kubernetes runs it as an exec readinessProbe,
so a pod gets traffic and counts as available only once its consumers have partitions and its
state has caught up (docs/runtime.md, Readiness)."""

from __future__ import annotations

import re
import sys
import urllib.request

DEFAULT_URL = "http://127.0.0.1:9100/metrics"
READY = re.compile(r"^automation_service_ready\s+1(\.0+)?\s*$", re.M)


def is_ready(url: str = DEFAULT_URL, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(READY.search(response.read().decode(errors="replace")))
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return 0 if is_ready(args[0] if args else DEFAULT_URL) else 1


if __name__ == "__main__":
    sys.exit(main())
