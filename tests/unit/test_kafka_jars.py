"""The broker's jars come from a lock of paths and SHA-256s: fetched as locked, refused when the
bytes differ, and left to Maven when the repository cannot be reached. A `file://` repository
in a temporary folder stands in for Maven Central here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from local_stack import kafka_jars
from local_stack.kafka_jars import JarLock, LockedJar, fetch_locked, parse_lock, render_lock
from local_stack.processes import StackError

JARS = {"org/example/a/1.0/a-1.0.jar": b"first jar", "org/example/b/2.0/b-2.0.jar": b"second"}


def locked(contents: dict[str, bytes]) -> tuple[LockedJar, ...]:
    return tuple(
        LockedJar(path, hashlib.sha256(body).hexdigest()) for path, body in contents.items()
    )


@pytest.fixture
def repository(tmp_path: Path) -> str:
    root = tmp_path / "repository"
    for path, body in JARS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(body)
    return root.as_uri()


def test_a_lock_reads_back_as_written_in_path_order():
    lock = JarLock("4.1.1", tuple(reversed(locked(JARS))))
    text = render_lock(lock)
    assert text.splitlines()[0] == "# kafka 4.1.1"
    again = parse_lock(text)
    assert again.kafka_version == "4.1.1"
    assert [jar.path for jar in again.jars] == sorted(JARS)
    assert set(again.jars) == set(lock.jars)


@pytest.mark.parametrize(
    "text",
    ["kafka 4.1.1\n", "# kafka 4.1.1\nabc  a.jar\n", f"# kafka 4.1.1\n{'0' * 64}  a.pom\n"],
)
def test_a_malformed_lock_is_refused_with_the_line(text):
    with pytest.raises(StackError, match="jar lock"):
        parse_lock(text)


def test_locked_jars_are_fetched_under_their_file_names(repository, tmp_path):
    out = tmp_path / "libs"
    out.mkdir()
    fetch_locked(locked(JARS), out, repository)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        "a-1.0.jar": b"first jar",
        "b-2.0.jar": b"second",
    }


def test_a_jar_whose_bytes_differ_from_the_lock_is_refused(repository, tmp_path):
    out = tmp_path / "libs"
    out.mkdir()
    tampered = {**JARS, "org/example/b/2.0/b-2.0.jar": b"what the lock was made from"}
    with pytest.raises(StackError, match=r"b-2\.0\.jar has SHA-256 \w+, the lock says"):
        fetch_locked(locked(tampered), out, repository)
    assert not (out / "b-2.0.jar").exists()


def test_an_unreachable_repository_leaves_the_jars_to_maven(tmp_path, monkeypatch):
    out = tmp_path / "libs"
    out.mkdir()
    maven_ran = []
    monkeypatch.setattr(kafka_jars, "copy_dependencies", lambda pom, o: maven_ran.append(o))
    version = kafka_jars.kafka_version(kafka_jars.pom_path())
    kafka_jars._fetch(version, out, (tmp_path / "nowhere").as_uri())
    assert maven_ran == [out]
    assert list(out.iterdir()) == []


def test_the_committed_lock_is_for_the_poms_kafka_and_holds_its_broker_jar():
    lock = parse_lock(kafka_jars.lock_path().read_text())
    version = kafka_jars.kafka_version(kafka_jars.pom_path())
    assert lock.kafka_version == version
    assert f"kafka_2.13-{version}.jar" in {jar.file_name for jar in lock.jars}
