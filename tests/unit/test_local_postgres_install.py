"""Installing PostgreSQL for the local stack tries the package lists the machine has before it
updates them, and tells the package not to make the system cluster the stack does not use; a
failed update or second install says which apt-get command failed. apt-get is replaced by a
recorder here, and the drop-in file goes to a temporary folder: the machine is not touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from local_stack import postgres
from local_stack.processes import StackError

BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def apt(monkeypatch, tmp_path):
    """apt-get as a list of the commands asked for; `fails` names those that exit 100."""
    installed: list[bool] = []
    calls: list[tuple[str, ...]] = []
    fails: set[tuple[str, ...]] = set()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        code = 100 if args in fails and calls.count(args) == 1 else 0
        if code == 0 and args[0] == "install":
            installed.append(True)
        return subprocess.CompletedProcess(["apt-get", *args], code, "", f"E: {args[0]} failed")

    monkeypatch.setattr(postgres, "_apt", run)
    monkeypatch.setattr(postgres, "NO_MAIN_CLUSTER", tmp_path / "createcluster.d" / "stack.conf")
    monkeypatch.setattr(postgres, "is_root", lambda: True)
    monkeypatch.setattr(postgres, "find_bin_dir", lambda: BIN if installed else None)
    return calls, fails


INSTALL = ("install", "-y", "postgresql")


def test_lists_the_machine_has_are_enough_without_an_update(apt):
    calls, _ = apt
    assert postgres.ensure_installed() == BIN
    assert calls == [INSTALL]


def test_the_package_is_told_not_to_make_its_own_cluster_before_it_installs(apt):
    postgres.ensure_installed()
    assert "create_main_cluster = off" in postgres.NO_MAIN_CLUSTER.read_text().splitlines()


def test_an_install_that_fails_on_old_lists_updates_them_and_tries_again(apt):
    calls, fails = apt
    fails.add(INSTALL)
    assert postgres.ensure_installed() == BIN
    assert calls == [INSTALL, ("update",), INSTALL]


def test_a_failing_update_is_reported_by_its_command(apt):
    calls, fails = apt
    fails.update({INSTALL, ("update",)})
    with pytest.raises(StackError, match=r"`apt-get update` failed:\nE: update failed"):
        postgres.ensure_installed()
    assert calls == [INSTALL, ("update",)]
