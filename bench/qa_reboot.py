#!/usr/bin/env python3
"""Reboot figures on the QA cluster (issue 15): the time for a rebooted node's instances to
run again, and for the cluster to work again after its master's power is cut.

Run as root with the project's interpreter (it boots QEMU nodes like ``./dev qa``):
    .venv/bin/python bench/qa_reboot.py [--no-run]

It runs tests/qa/test_reboot.py (three QA nodes booting systemd with cardume's .deb; see its
docstring), which writes its times to ``bench/results/qa_reboot.json``, and prints them;
``--no-run`` prints the last ones. Figures only: the test asserts behaviour, never a time.
Under QEMU's software emulation (TCG) boots are CPU-bound: the figures compare runs of
cardume on this machine, not real servers.

The figures (seconds):
  node reboot: systemctl reboot -> agent back     the guest kernel's reboot and systemd's
                                                  boot until the harness's agent answers
                                                  with a new boot id
  node reboot: ... -> instances running, in sync  also the node daemon (systemd), one
                                                  watcher pass (started by hand right after
                                                  the boot), the instance restarted there,
                                                  both DRBD mirrors Connected and UpToDate
  master power cut -> master-failover ... done    QEMU killed, gnt-cluster master-failover
                                                  --no-voting on a candidate, until
                                                  gnt-instance list answers there
  old master powered on -> ... given up           its boot, and systemd's 5 starts of a
                                                  master daemon that the other nodes outvote
  boot, cluster up, the module's nodes            the fixture: 3 nodes booted, the cluster
                                                  made from the package, the whole module
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "qa_reboot.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run", action="store_true", help="print the last figures only")
    args = parser.parse_args(argv)
    if not args.no_run:
        env = dict(os.environ, CARDUME_QA="1")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/qa/test_reboot.py"], cwd=REPO, env=env, check=False)
        if proc.returncode != 0:
            print(f"tests/qa/test_reboot.py failed ({proc.returncode}); figures may be partial",
                  file=sys.stderr)
    try:
        data = json.loads(RESULTS.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"no figures in {RESULTS}: {err}") from None
    print(f"QA reboot figures ({data.get('when', '?')}):")
    for what, seconds in data.get("figures", {}).items():
        print(f"  {what:<75} {seconds:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
