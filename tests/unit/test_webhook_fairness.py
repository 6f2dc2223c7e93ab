"""A claim shares the delivery slots between endpoints: a dead endpoint with its attempts in
flight takes no more, and a backlog of one endpoint does not crowd out the others."""

from __future__ import annotations

from api_gateway.webhooks.fairness import choose


def rows(endpoint: int, count: int) -> list[tuple[str, int]]:
    return [(f"e{endpoint}-{n}", endpoint) for n in range(count)]


def test_a_dead_endpoint_at_its_cap_gets_nothing_and_the_others_go_on():
    due = rows(1, 100) + rows(2, 1) + rows(3, 2)
    chosen = choose(due, in_flight={1: 4}, per_endpoint=4, slots=64)
    assert chosen == ["e2-0", "e3-0", "e3-1"]


def test_endpoints_take_turns_so_a_backlog_takes_only_its_share():
    due = rows(1, 100) + rows(2, 3) + rows(3, 1)
    chosen = choose(due, in_flight={}, per_endpoint=4, slots=5)
    assert chosen == ["e1-0", "e2-0", "e3-0", "e1-1", "e2-1"]


def test_each_endpoint_stays_within_its_cap_counting_what_is_in_flight():
    due = rows(1, 10) + rows(2, 10)
    chosen = choose(due, in_flight={1: 3, 2: 0}, per_endpoint=4, slots=64)
    assert chosen == ["e1-0", "e2-0", "e2-1", "e2-2", "e2-3"]
    assert choose(due, in_flight={1: 9}, per_endpoint=4, slots=64) == [
        "e2-0",
        "e2-1",
        "e2-2",
        "e2-3",
    ]


def test_rows_of_one_endpoint_go_in_due_order_and_nothing_is_taken_twice():
    due = rows(1, 3)
    assert choose(due, {}, per_endpoint=10, slots=10) == ["e1-0", "e1-1", "e1-2"]
    assert choose([], {}, per_endpoint=4, slots=10) == []
    assert choose(due, {}, per_endpoint=4, slots=0) == []
