"""Integration tests: a real local cluster (node daemons, master daemon) on loopback
addresses, driven by the real ``gnt-*`` commands of the project's virtual environment.

Every test module gets its own 3-node cluster (``cluster`` fixture) in a temporary
directory, on its own loopback range, brought down with ``--purge`` when the module ends;
``gnt(*args, node=None, check=True)`` runs a command against it and returns
``(exit code, stdout, stderr)``. ``debootstrap_settings``: what Debian's debootstrap OS will
use here (its archive checked, the test skipped if unreachable), for the modules that run it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from integration_kit import Gnt, VCluster, start_cluster, stop_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    vc = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield vc
    finally:
        stop_cluster(vc)


@pytest.fixture(scope="module")
def gnt(cluster: VCluster) -> Gnt:
    return cluster.gnt


@pytest.fixture(scope="module")
def debootstrap_settings() -> dict[str, str]:
    from test_debootstrap import OS_DIR, check_archive, os_settings
    assert (OS_DIR / "create").is_file(), (
        f"{OS_DIR} is missing: install ganeti-instance-debootstrap (./dev install does)")
    found = os_settings()
    check_archive(found)
    return found
