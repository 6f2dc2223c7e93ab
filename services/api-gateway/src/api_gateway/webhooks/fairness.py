"""Which due deliveries a claim takes: at most `per_endpoint` in flight per endpoint, at most
`slots` in all, one endpoint after another in turn so that an endpoint with a long backlog takes
no more than its share. A dead endpoint with its attempts in flight gets nothing more while the
others go on: one slow endpoint never delays another's deliveries. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

DeliveryId = TypeVar("DeliveryId")


def choose(
    due: Iterable[tuple[DeliveryId, int]],
    in_flight: Mapping[int, int],
    per_endpoint: int,
    slots: int,
) -> list[DeliveryId]:
    """`due` is (delivery id, endpoint id) with each endpoint's rows in due order and the
    endpoints in the order they should be served (the most overdue first); `in_flight` counts
    each endpoint's attempts still leased."""
    queues: dict[int, list[DeliveryId]] = {}
    for delivery, endpoint in due:
        queues.setdefault(endpoint, []).append(delivery)
    room = {e: max(0, per_endpoint - in_flight.get(e, 0)) for e in queues}
    chosen: list[DeliveryId] = []
    turn = 0
    while len(chosen) < slots:
        took = False
        for endpoint, queue in queues.items():
            if len(chosen) >= slots:
                break
            if turn < min(room[endpoint], len(queue)):
                chosen.append(queue[turn])
                took = True
        if not took:
            break
        turn += 1
    return chosen
