"""The QA suite: real LVM and DRBD on QEMU virtual machines (see qaharness/).

It runs when ``CARDUME_QA=1`` is set: by ``./dev qa`` (this suite alone) and by ``./dev test``
as root (in the same session as every other test); otherwise these modules are not
collected. Fixtures: ``qa_images`` (the cached guest artefacts, built
on first use), ``qa_cluster`` (``CARDUME_QA_NODES`` nodes, 3 by default so that a drbd
secondary has somewhere to move; booted once per session and stopped at its end) and
``qa_cardume`` (a cardume cluster on those nodes: node daemons running, node1 the master,
the others added; see qaharness/cardume.py).
Timings are printed at the end of the session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qaharness import cardume, images, vm

QA_ENABLED = os.environ.get("CARDUME_QA") == "1"
if not QA_ENABLED:
    collect_ignore_glob = ["test_*.py"]

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def qa_images() -> images.Images:
    t0 = time.monotonic()
    built = images.build()
    TIMINGS["images (build or reuse)"] = time.monotonic() - t0
    return built


@pytest.fixture(scope="session")
def qa_cluster(qa_images: images.Images,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[vm.Cluster]:
    count = int(os.environ.get("CARDUME_QA_NODES", "3"))
    cluster = vm.boot(qa_images, Path(tmp_path_factory.mktemp("qa-nodes")), count)
    TIMINGS[f"boot of {count} nodes"] = cluster.boot_seconds
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def qa_cardume(qa_cluster: vm.Cluster) -> cardume.CardumeCluster:
    t0 = time.monotonic()
    cc = cardume.cluster_up(qa_cluster)
    TIMINGS["cardume cluster up"] = time.monotonic() - t0
    TIMINGS.update({f"  {what}": seconds for what, seconds in cc.timings.items()})
    return cc


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("QA timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f}s")
