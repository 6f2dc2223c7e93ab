"""Our own PostgreSQL cluster from Debian's binaries (not the Debian-managed cluster)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from contracts.settings import LOCAL_DB_NAME as APP_DB
from contracts.settings import LOCAL_DB_PASSWORD as APP_PASSWORD
from contracts.settings import LOCAL_DB_USER as APP_USER
from local_stack.processes import StackError, cmdline, is_alive, read_pid, wait_until_gone
from local_stack.settings import StackPaths, StackSettings

CLUSTER_OWNER = "postgres"  # the OS user when we are root, and the superuser role name
SOCKET_PATH_LIMIT = 100  # sun_path holds 108 bytes; keep a margin
STOP_TIMEOUT_S = 30
NO_MAIN_CLUSTER = Path("/etc/postgresql-common/createcluster.d/content-automation-stack.conf")
INCLUDE_LINE = "include_if_exists = 'stack.conf'"


def is_root() -> bool:
    return os.geteuid() == 0


def sync_conninfo(database_url: str) -> str:
    """psycopg wants `postgresql://`; SQLAlchemy URLs carry a driver (`postgresql+psycopg://`)."""
    return re.sub(r"^postgres(?:ql)?\+[A-Za-z0-9_]+://", "postgresql://", database_url)


def _version_of(bin_dir: Path) -> int:
    return int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0


def find_bin_dir() -> Path | None:
    debian = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")), key=_version_of
    )
    if debian:
        return debian[-1]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and (Path(pg_ctl).resolve().parent / "postgres").exists():
        return Path(pg_ctl).resolve().parent
    return None


def ensure_installed() -> Path:
    bin_dir = find_bin_dir()
    if bin_dir is not None:
        return bin_dir
    if not is_root():
        raise StackError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres) and we are not "
            "root: run `sudo apt-get install -y postgresql`, or set DATABASE_URL"
        )
    no_main_cluster()
    # Package lists the machine already has are tried first: `apt-get update` costs a fresh
    # machine 3-4 s while the demo waits. Lists too old to install from (or none) mean an
    # update and a second try.
    if _apt("install", "-y", "postgresql").returncode != 0:
        for args in (("update",), ("install", "-y", "postgresql")):
            result = _apt(*args)
            if result.returncode != 0:
                output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise StackError(f"`apt-get {' '.join(args)}` failed:\n{output}")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise StackError("installed the postgresql package but found no postgres binary")
    return bin_dir


def no_main_cluster() -> None:
    """Tell the package not to create and start the system cluster it makes by default
    (postgresql-common reads createcluster.d): the stack runs a cluster of its own, and that
    initdb cost the install 1.5 s."""
    if not NO_MAIN_CLUSTER.exists():
        NO_MAIN_CLUSTER.parent.mkdir(parents=True, exist_ok=True)
        NO_MAIN_CLUSTER.write_text(
            "# Written by the content-automation local stack, which runs a cluster of its own.\n"
            "create_main_cluster = off\n"
        )


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], check=False, capture_output=True, text=True, env=env)


def as_cluster_owner(command: list[str]) -> list[str]:
    # postgres refuses to run as root; as anyone else it runs as that user.
    return ["runuser", "-u", CLUSTER_OWNER, "--", *command] if is_root() else command


def _give_to_cluster_owner(path: Path) -> None:
    if is_root():
        shutil.chown(path, CLUSTER_OWNER, CLUSTER_OWNER)


def _owner_can_write(directory: Path) -> bool:
    check = as_cluster_owner(["test", "-w", str(directory)])
    return subprocess.run(check, check=False, capture_output=True).returncode == 0


def prepare_dirs(paths: StackPaths) -> None:
    paths.pg_dir.mkdir(parents=True, exist_ok=True)
    _give_to_cluster_owner(paths.pg_dir)
    if not _owner_can_write(paths.pg_dir):
        raise StackError(
            f"the `{CLUSTER_OWNER}` user cannot reach {paths.pg_dir} (a parent directory is "
            "closed to it): set STACK_HOME to a directory it can enter, e.g. under /var/tmp"
        )


def socket_dir(paths: StackPaths, port: int) -> Path:
    if len(str(paths.pg_socket_dir / f".s.PGSQL.{port}")) <= SOCKET_PATH_LIMIT:
        return paths.pg_socket_dir
    return Path(f"/tmp/content-automation-pg-{port}")


def _prepare_socket_dir(directory: Path) -> None:
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    _give_to_cluster_owner(directory)


def init_cluster_once(bin_dir: Path, paths: StackPaths) -> None:
    if (paths.pg_data / "PG_VERSION").is_file():
        return
    # A data dir without PG_VERSION is what an interrupted initdb leaves; initdb wants it empty.
    shutil.rmtree(paths.pg_data, ignore_errors=True)
    command = as_cluster_owner([
        str(bin_dir / "initdb"), "-D", str(paths.pg_data), "-U", CLUSTER_OWNER,
        "--auth-local=trust", "--auth-host=trust", "--encoding=UTF8", "--locale=C.UTF-8",
    ])  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=paths.pg_dir)
    if result.returncode != 0:
        raise StackError(f"initdb failed:\n{(result.stdout + result.stderr).strip()}")
    with (paths.pg_data / "postgresql.conf").open("a") as conf:
        conf.write(f"\n# Settings of the content-automation local stack\n{INCLUDE_LINE}\n")


def write_cluster_config(paths: StackPaths, port: int, sockets: Path) -> None:
    """Rewritten on every start so port changes apply; listens on loopback only."""
    stack_conf = paths.pg_data / "stack.conf"
    stack_conf.write_text(
        "listen_addresses = '127.0.0.1'\n"
        f"port = {port}\n"
        f"unix_socket_directories = '{sockets}'\n"
        "max_connections = 200\n"
    )
    _give_to_cluster_owner(stack_conf)


def running_postmaster_pid(paths: StackPaths) -> int | None:
    pid = read_pid(paths.pg_data / "postmaster.pid")
    if pid is None or not is_alive(pid):
        return None
    line = cmdline(pid)
    return pid if line and Path(line[0]).name in ("postgres", "postmaster") else None


def start_cluster(bin_dir: Path, paths: StackPaths, timeout_s: float) -> None:
    command = as_cluster_owner([
        str(bin_dir / "pg_ctl"), "start", "-D", str(paths.pg_data), "-l", str(paths.pg_log),
        "-w", "-t", str(int(timeout_s)),
    ])  # fmt: skip
    result = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        cwd=paths.pg_dir,
        start_new_session=True,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise StackError(f"pg_ctl start failed:\n{output}", paths.pg_log)


def wait_until_accepting(conninfo: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(conninfo, connect_timeout=3):
                return
        except psycopg.Error as error:
            last_error = error
            time.sleep(0.3)
    raise StackError(
        f"PostgreSQL did not accept connections within {timeout_s:.0f} s: {last_error}"
    )


def admin_conninfo(port: int) -> str:
    return f"host=127.0.0.1 port={port} user={CLUSTER_OWNER} dbname=postgres"


def ensure_app_database(port: int, database: str = APP_DB) -> list[str]:
    """Creates the app role and a database it owns (the app's, unless named) if missing; returns
    what it created."""
    created = []
    with psycopg.connect(admin_conninfo(port), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_USER]).fetchone():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_USER), sql.Literal(APP_PASSWORD)
                )
            )
            created.append(f"role {APP_USER}")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(APP_USER)
                )
            )
            created.append(f"database {database}")
    return created


def ensure_cluster(settings: StackSettings, paths: StackPaths) -> bool:
    """Starts our cluster unless it runs; True if this call started it."""
    started = False
    if running_postmaster_pid(paths) is None:
        bin_dir = ensure_installed()
        prepare_dirs(paths)
        sockets = socket_dir(paths, settings.pg_port)
        _prepare_socket_dir(sockets)
        init_cluster_once(bin_dir, paths)
        write_cluster_config(paths, settings.pg_port, sockets)
        start_cluster(bin_dir, paths, settings.pg_ready_timeout_s)
        started = True
    try:
        wait_until_accepting(admin_conninfo(settings.pg_port), settings.pg_ready_timeout_s)
        ensure_app_database(settings.pg_port)
    except BaseException as failure:
        if started:
            stop_cluster(paths)
        if isinstance(failure, StackError):
            raise StackError(failure.message, paths.pg_log) from failure
        raise
    return started


def _children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[-1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def _pg_ctl_stop(bin_dir: Path | None, paths: StackPaths, mode: str) -> bool:
    if bin_dir is None:
        return False
    command = as_cluster_owner([
        str(bin_dir / "pg_ctl"), "stop", "-D", str(paths.pg_data), "-m", mode,
        "-w", "-t", str(STOP_TIMEOUT_S),
    ])  # fmt: skip
    return (
        subprocess.run(command, check=False, capture_output=True, cwd=paths.pg_dir).returncode == 0
    )


def stop_cluster(paths: StackPaths) -> int | None:
    """Stops our postmaster and its backends; returns the postmaster pid if it was running."""
    pid = running_postmaster_pid(paths)
    if pid is None:
        return None
    backends = _children_of(pid)
    bin_dir = find_bin_dir()
    if not _pg_ctl_stop(bin_dir, paths, "fast"):
        _pg_ctl_stop(bin_dir, paths, "immediate")
    for leftover in [pid, *backends]:
        if not wait_until_gone(leftover, 10) and _is_postgres_process(leftover):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
            if not wait_until_gone(leftover, 10):
                raise StackError(f"PostgreSQL process {leftover} survived SIGKILL", paths.pg_log)
    return pid


def _is_postgres_process(pid: int) -> bool:
    # Backends show as "postgres: checkpointer" etc.; guards against a reused pid.
    line = cmdline(pid)
    return bool(line) and line[0].startswith(("postgres", "/usr/lib/postgresql/"))
