"""The broker's runtime jars, in the stack's cache: fetched straight from Maven Central as
`deploy/local/kafka/jars.lock` lists them (each jar's path in the repository and its SHA-256),
several at once; Maven resolves the pom instead where the lock is for another Kafka version or
the repository cannot be reached. `stack lock-jars` writes the lock from Maven's resolution.

Why both (docs/adr/0002): Maven's own start and its plugins cost a fresh machine 7 s of a core
before the first jar, at the moment the demo waits for the broker; the lock pins what Maven
resolved, so the fast path fetches the same bytes and refuses any other."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from contracts.settings import repo_root
from local_stack.processes import StackError

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
# Every JVM here (Maven fetching the jars, the storage tool, the brokers) runs on the client
# compiler alone, with the serial collector: on a small machine, in the first minute of a demo
# or a test, C2 compiling the hot paths costs more CPU than it gives back (a demo's broker used
# 15 s of CPU with both compilers, 7-8 s with C1 alone), and G1's own threads compete with the
# services for two cores. A broker for production is started by its own image, not by this.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
LOCK_HEADER = "# kafka"
FETCHES_AT_ONCE = 8
FETCH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LockedJar:
    """One jar: where it is in a Maven repository, and the SHA-256 of its bytes."""

    path: str  # e.g. org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar
    sha256: str

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class JarLock:
    kafka_version: str
    jars: tuple[LockedJar, ...]


def pom_path() -> Path:
    beside_package = Path(__file__).resolve().parents[2] / "kafka" / "pom.xml"
    if beside_package.is_file():
        return beside_package
    return repo_root() / "deploy" / "local" / "kafka" / "pom.xml"


def lock_path() -> Path:
    return pom_path().with_name("jars.lock")


def kafka_version(pom: Path) -> str:
    version = ET.parse(pom).getroot().find("m:properties/m:kafka.version", POM_NS)
    if version is None or not (version.text or "").strip():
        raise StackError(f"no <kafka.version> property in {pom}")
    return version.text.strip()


def render_lock(lock: JarLock) -> str:
    lines = [f"{LOCK_HEADER} {lock.kafka_version}"]
    lines += [f"{jar.sha256}  {jar.path}" for jar in sorted(lock.jars, key=lambda j: j.path)]
    return "\n".join(lines) + "\n"


def parse_lock(text: str) -> JarLock:
    """The lock's first line names the Kafka version; each other line is `<sha256>  <path>`,
    as `sha256sum` prints it."""
    first, *rest = text.strip().splitlines() or [""]
    if not first.startswith(LOCK_HEADER + " "):
        raise StackError(f"a jar lock starts with `{LOCK_HEADER} <version>`, not {first!r}")
    jars = []
    for line in rest:
        digest, _, path = line.partition("  ")
        if len(digest) != 64 or not path.endswith(".jar"):
            raise StackError(f"a jar lock line is `<sha256>  <path>.jar`, not {line!r}")
        jars.append(LockedJar(path, digest))
    return JarLock(first.removeprefix(LOCK_HEADER + " "), tuple(jars))


def has_broker_jar(libs: Path, version: str) -> bool:
    return (libs / f"kafka_2.13-{version}.jar").is_file()


def ensure_broker_jars(cache_dir: Path, repository: str) -> Path:
    """The cached libs dir for the pom's Kafka version, filled the first time it is missing."""
    version = kafka_version(pom_path())
    libs = cache_dir / f"kafka-{version}" / "libs"
    if has_broker_jar(libs, version):
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Fetch into a scratch dir and rename, so an interrupted download never looks complete.
    scratch = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    try:
        _fetch(version, scratch, repository)
        if not has_broker_jar(scratch, version):
            raise StackError(f"kafka_2.13-{version}.jar is not among the jars fetched")
        shutil.rmtree(libs, ignore_errors=True)
        try:
            scratch.rename(libs)
        except OSError:
            if not has_broker_jar(libs, version):  # someone else's rename won the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return libs


def _fetch(version: str, output_dir: Path, repository: str) -> None:
    lock_file = lock_path()
    lock = parse_lock(lock_file.read_text()) if lock_file.is_file() else None
    if lock is not None and lock.kafka_version == version:
        try:
            fetch_locked(lock.jars, output_dir, repository)
            return
        except (urllib.error.URLError, OSError):
            # Unreachable from here (a mirror in Maven's settings, say): Maven knows the way.
            for partial in output_dir.iterdir():
                partial.unlink()
    copy_dependencies(pom_path(), output_dir)


def fetch_locked(jars: Iterable[LockedJar], output_dir: Path, repository: str) -> None:
    """Each jar from `repository` into `output_dir`, several at once. A jar whose bytes are not
    the locked ones is refused (StackError), whatever else arrived."""
    base = repository.rstrip("/")

    def fetch(jar: LockedJar) -> None:
        with urllib.request.urlopen(f"{base}/{jar.path}", timeout=FETCH_TIMEOUT_S) as response:
            body = response.read()
        digest = _sha256(body)
        if digest != jar.sha256:
            raise StackError(
                f"{base}/{jar.path} has SHA-256 {digest}, the lock says {jar.sha256}: refused"
            )
        (output_dir / jar.file_name).write_bytes(body)

    with ThreadPoolExecutor(FETCHES_AT_ONCE, thread_name_prefix="jar-fetch") as pool:
        for done in [pool.submit(fetch, jar) for jar in jars]:
            done.result()


def copy_dependencies(pom: Path, output_dir: Path, repository_layout: bool = False) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("`mvn` is not on PATH; Maven fetches the Kafka jars")
    command = [
        mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={output_dir}",
        f"-Dmdep.useRepositoryLayout={str(repository_layout).lower()}",
    ]  # fmt: skip
    maven_opts = " ".join((os.environ.get("MAVEN_OPTS", ""), *JVM_OPTIONS)).strip()
    env = {**os.environ, "MAVEN_OPTS": maven_opts}
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise StackError("Maven could not fetch the Kafka jars:\n" + "\n".join(output))


def lock_from_maven(pom: Path) -> JarLock:
    """What Maven resolves for the pom now, as a lock."""
    with tempfile.TemporaryDirectory(prefix="jar-lock-") as scratch:
        root = Path(scratch)
        copy_dependencies(pom, root, repository_layout=True)
        jars = tuple(
            LockedJar(jar.relative_to(root).as_posix(), _sha256(jar.read_bytes()))
            for jar in root.rglob("*.jar")
        )
    return JarLock(kafka_version(pom), jars)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
