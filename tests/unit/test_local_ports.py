"""The local stack waits a moment for a port that a process killed a moment ago still holds,
and refuses one that stays taken; test servers get free ports outside the ephemeral range."""

from __future__ import annotations

import socket
import threading
from itertools import pairwise

from local_stack.processes import port_frees_up, port_is_free
from tests.support import services
from tests.support.services import ephemeral_ports, free_port, worker_part


def listening_socket() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()[1]


def test_a_port_let_go_of_while_waiting_counts_as_free():
    server, port = listening_socket()
    assert not port_is_free(port)
    threading.Timer(0.5, server.close).start()
    assert port_frees_up(port, within_s=10)


def test_a_port_that_stays_taken_is_refused():
    server, port = listening_socket()
    with server:
        assert not port_frees_up(port, within_s=0.5)


def test_a_test_servers_ports_are_free_and_never_an_outgoing_connections():
    first = free_port(6)
    ports = range(first, first + 6)
    assert all(port_is_free(port) for port in ports)
    assert ports[-1] < ephemeral_ports().start


def another_free_port(than: int) -> int:
    """A port after `than` that nothing holds now (a service of an earlier test in this
    process may hold the next one)."""
    return next(port for port in range(than + 1, than + 200) if port_is_free(port))


def test_a_port_taken_since_is_passed_over(monkeypatch):
    first = free_port()
    other = another_free_port(first)
    monkeypatch.setattr(services, "_GIVEN", set())  # as if neither was ever handed out
    picks = iter([first, other])
    monkeypatch.setattr(services.random, "randrange", lambda *_: next(picks))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        assert free_port() == other


def test_a_port_handed_out_is_not_handed_out_again_before_its_server_binds(monkeypatch):
    first = free_port()
    other = another_free_port(first)
    monkeypatch.setattr(services, "_GIVEN", {first})  # only `first` handed out so far
    picks = iter([first, other])
    monkeypatch.setattr(services.random, "randrange", lambda *_: next(picks))
    assert port_is_free(first)  # nothing bound it yet, as while a service still starts
    assert free_port() == other


def test_each_xdist_worker_picks_from_a_part_of_its_own():
    ports = range(20_000, 32_768)
    parts = [
        worker_part(ports, {"PYTEST_XDIST_WORKER": f"gw{n}", "PYTEST_XDIST_WORKER_COUNT": "4"})
        for n in range(4)
    ]
    assert [len(part) for part in parts] == [3192] * 4
    assert all(a.stop <= b.start for a, b in pairwise(parts))
    assert parts[0].start == 20_000 and parts[-1].stop <= 32_768
    assert worker_part(ports, {}) == ports  # not under xdist: the whole range
