"""The committed jar lock is what Maven resolves for the pom today: the broker the stack starts
from the lock is the broker the pom describes (after a pom change, `stack lock-jars`)."""

from __future__ import annotations

from local_stack import kafka_jars


def test_the_committed_lock_is_what_maven_resolves_for_the_pom():
    committed = kafka_jars.parse_lock(kafka_jars.lock_path().read_text())
    resolved = kafka_jars.lock_from_maven(kafka_jars.pom_path())
    assert committed.kafka_version == resolved.kafka_version
    assert sorted(committed.jars, key=lambda j: j.path) == sorted(
        resolved.jars, key=lambda j: j.path
    ), "deploy/local/kafka/jars.lock is out of date: run `stack lock-jars`"
