"""The durable spool: one drainer at a time, bounded slices, nothing lost in between."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from tracker.services.spool import DRAIN_LOCK, Spool


def collect_into(sink: list[dict]) -> Callable[[list[dict]], list[dict]]:
    def handler(events: list[dict]) -> list[dict]:
        sink.extend(events)
        return []
    return handler


def test_a_second_drainer_waits_its_turn_and_nothing_is_lost(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for n in range(5):
        spool.append({"n": n})
    drained: list[dict] = []
    # Another process (here: another open file description) is draining this spool.
    fd = os.open(tmp_path / DRAIN_LOCK, os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert spool.drain(collect_into(drained)) == 0
        assert drained == []
        # Handed over all the same, for whichever drainer runs next.
        assert spool.pending() > 0
    finally:
        os.close(fd)
    assert spool.drain(collect_into(drained)) == 5
    assert [e["n"] for e in drained] == [0, 1, 2, 3, 4]
    assert spool.pending() == 0


def test_a_backlog_drains_in_bounded_slices(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for n in range(3):  # three segments, one event each
        spool.append({"n": n, "pad": "x" * 100})
        spool.rotate()
    drained: list[dict] = []
    assert spool.drain(collect_into(drained), budget=1) == 1
    assert spool.backlog
    while spool.backlog:
        spool.drain(collect_into(drained), budget=1)
    assert sorted(e["n"] for e in drained) == [0, 1, 2]
