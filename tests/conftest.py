"""Real infrastructure for the integration and end-to-end layers.

Kafka and PostgreSQL come, in this order of preference, from KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL, from testcontainers when TEST_STACK=testcontainers and a Docker engine answers,
or from the local stack (deploy/local), which this session starts when it is not already up
and stops again at the end. Pure unit tests need none of it.

The suite runs in parallel with pytest-xdist (`make test` does). The controller then brings the
infrastructure up once and hands it to the workers; each worker has its own topic namespace and
every test its own account, so tests share the broker and the database but not their data. On the
local stack that database is the tests' own (`tests.support.infra.TEST_DATABASE`), not the one a
demo's services may still be working in. Tests that share a module-scoped fixture go to one
worker together, and so do the modules marked with `tests.support.parallel.SHARED_ROWS` (they
act on rows of every account).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from contracts.db.engines import sync_engine
from contracts.db.migrate import upgrade
from contracts.topics import Topics
from tests.support.fake_openai import FakeOpenAI
from tests.support.infra import Endpoints, Infrastructure, bring_up, hand_to_workers
from tests.support.kafka import delete_topics
from tests.support.pipeline import Pipeline
from tests.support.services import Services, service_env

LAYERS = ("unit", "integration", "e2e")

# Shared assertions keep pytest's explanations of what differed.
pytest.register_assert_rewrite("tests.support.outcomes")


INFRASTRUCTURE = pytest.StashKey[Infrastructure]()


def _xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def _unit_only(config: pytest.Config) -> bool:
    args = config.args or ["tests"]
    return config.option.markexpr == "unit" or all("tests/unit" in arg for arg in args)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist: the infrastructure, once, before the workers start."""
    config = session.config
    if _xdist_controller(config) and not _unit_only(config):
        infrastructure = bring_up()
        hand_to_workers(infrastructure.endpoints)
        config.stash[INFRASTRUCTURE] = infrastructure


def pytest_sessionfinish(session: pytest.Session) -> None:
    if (infrastructure := session.config.stash.get(INFRASTRUCTURE, None)) is not None:
        infrastructure.stop()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries the marker of its folder, so `-m unit` (or integration, e2e) runs one
    layer on its own; tests that share a module-scoped fixture form one group of the module's
    name. The end-to-end layer goes first and the unit layer last, so the long tests start
    early and the short ones fill the workers at the end."""
    for item in items:
        layer = next((part for part in item.path.parts if part in LAYERS), None)
        if layer is not None:
            item.add_marker(layer)
        if item.get_closest_marker("xdist_group") is None and _shares_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(key=_layer_order)


def _shares_module_fixture(item: pytest.Item) -> bool:
    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = fixtures.name2fixturedefs.values() if fixtures else ()
    return any(d[-1].scope in ("module", "package") for d in definitions)


def _layer_order(item: pytest.Item) -> int:
    order = {"e2e": 0, "integration": 1, "unit": 2}
    return next((order[m.name] for m in item.iter_markers() if m.name in order), 3)


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
    """This session's Kafka and PostgreSQL (a parallel worker's come from the controller)."""
    infrastructure = bring_up()
    yield infrastructure.endpoints
    infrastructure.stop()


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
