"""A run's live stream read in a background thread, the way a browser's EventSource reads it."""

from __future__ import annotations

import threading

import httpx

API = "/api/v1/automation"


def _listen(
    client: httpx.Client,
    run_id: str,
    into: list[dict],
    connected: threading.Event,
    headers: dict[str, str],
) -> None:
    with client.stream("GET", f"{API}/runs/{run_id}/events", headers=headers, timeout=60) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        event: dict = {}
        for line in answer.iter_lines():
            connected.set()
            if line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(": ")
                event[name.rstrip(":")] = value
            elif line == "" and event:
                into.append(event)
                event = {}


def start_listener(
    client: httpx.Client, run_id: str, headers: dict[str, str] | None = None
) -> tuple[threading.Thread, list[dict]]:
    """The thread reading the stream, and the events ({id, event, data}) it has read so far;
    returns once the stream has answered."""
    received: list[dict] = []
    connected = threading.Event()
    thread = threading.Thread(
        target=_listen, args=(client, run_id, received, connected, headers or {}), daemon=True
    )
    thread.start()
    assert connected.wait(10)
    return thread, received
