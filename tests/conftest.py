"""Real infrastructure for the integration and end-to-end layers.

Kafka and PostgreSQL come, in this order of preference, from KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL, from testcontainers when TEST_STACK=testcontainers and a Docker engine answers,
or from the local stack (deploy/local), which this session starts when it is not already up
and stops again at the end. Pure unit tests need none of it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from contracts.db.engines import sync_engine
from contracts.db.migrate import upgrade
from contracts.topics import Topics
from tests.support.fake_openai import FakeOpenAI
from tests.support.infra import Endpoints, from_testcontainers
from tests.support.kafka import delete_topics
from tests.support.pipeline import Pipeline
from tests.support.services import Services, service_env

LAYERS = ("unit", "integration", "e2e")

# Shared assertions keep pytest's explanations of what differed.
pytest.register_assert_rewrite("tests.support.outcomes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries the marker of its folder, so `-m unit` (or integration, e2e) runs one
    layer on its own."""
    for item in items:
        layer = next((part for part in item.path.parts if part in LAYERS), None)
        if layer is not None:
            item.add_marker(layer)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A test provider that behaves like OpenAI (tests/support/fake_openai.py), on a free port."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def pipeline(kafka_bootstrap: str, topics: Topics) -> Pipeline:
    """Sends run commands and folds a run's events from the session's topics."""
    return Pipeline(kafka_bootstrap, topics)


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    from local_stack import stack as local_stack

    containers = None
    if os.environ.get("TEST_STACK") == "testcontainers":
        containers = from_testcontainers()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = containers.kafka_bootstrap
        os.environ["DATABASE_URL"] = containers.database_url
    up = local_stack.ensure_up()
    yield Endpoints(kafka_bootstrap=up.kafka_bootstrap, database_url=up.database_url)
    if containers is not None:
        containers.stop()
    elif up.started and not os.environ.get("KEEP_STACK"):
        local_stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: Endpoints) -> str:
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(stack: Endpoints) -> str:
    return stack.database_url


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[sa.Engine]:
    """The test database, migrated to the newest schema."""
    upgrade(database_url)
    engine = sync_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def topics(stack: Endpoints) -> Iterator[Topics]:
    """A topic namespace of this test session's own, created now and deleted at the end, so
    concurrent sessions and the demo never see each other's messages."""
    from local_stack.topics import ensure_topics

    namespace = Topics(f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(stack.kafka_bootstrap, namespace)
    yield namespace
    delete_topics(stack.kafka_bootstrap, [spec.name for spec in namespace.specs()])


@pytest.fixture(scope="session")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(
            "kcat is not installed: deploy/local/bootstrap.sh installs it (apt package kcat)"
        )
    return path


@pytest.fixture
def services(stack: Endpoints, topics: Topics, tmp_path_factory) -> Iterator[Services]:
    """Start services as separate processes; all are stopped when the test ends."""
    run_dir = tmp_path_factory.mktemp("services")
    env = service_env(stack.kafka_bootstrap, stack.database_url, topics, run_dir)
    running = Services(base_env=env, log_dir=run_dir / "service-logs")
    yield running
    running.stop_all()
