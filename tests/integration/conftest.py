"""Fixtures every integration module may ask for: the gateway as a process and a stand-in
orchestrator that answers its run commands (module-scoped: one of each per test module), and
an account with a token and a site (`tenant`), and another (`other`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from contracts.topics import Topics
from tests.support.gateway import FakeOrchestrator, Gateway, Tenant, make_tenant, start_gateway


@pytest.fixture(scope="module")
def gateway(stack, topics: Topics, db, tmp_path_factory) -> Iterator[Gateway]:
    services, started = start_gateway(stack, topics, tmp_path_factory.mktemp("gateway"))
    yield started
    services.stop_all()


@pytest.fixture
def tenant(db, gateway) -> Tenant:
    return make_tenant(db, gateway, credits=1000)


@pytest.fixture
def other(db, gateway) -> Tenant:
    """A second account, for what one tenant must not see of another's."""
    return make_tenant(db, gateway, credits=1000)


@pytest.fixture(scope="module")
def orchestrator(gateway: Gateway) -> Iterator[FakeOrchestrator]:
    fake = FakeOrchestrator(gateway.bootstrap, gateway.topics)
    thread = threading.Thread(target=asyncio.run, args=(fake.serve(),), daemon=True)
    thread.start()
    assert fake.ready.wait(30), "the stand-in orchestrator never got its partitions"
    yield fake
    fake.stopping = True
    thread.join(10)
