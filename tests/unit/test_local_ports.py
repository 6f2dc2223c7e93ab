"""The local stack waits a moment for a port that a process killed a moment ago still holds,
and refuses one that stays taken."""

from __future__ import annotations

import socket
import threading

from local_stack.processes import port_frees_up, port_is_free


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
