"""A durable, append-only event spool shared by every process on one machine.

The collector answers 202 only after the event line is written to a spool segment, so an
acknowledged event survives a crash of the process (SIGKILL) and is replayed from disk.
Each process appends to its own *active* segment and holds an exclusive ``flock`` on it for as
long as it writes there, handing it over as *ready* every drain interval (`rotate`). One
drainer at a time (a lock file) adopts the active segments of dead processes (their lock is
free) and drains the ready ones, a bounded slice per call. A ready segment is deleted only
after its events are committed to the database; a replay after a crash in between is
harmless because events carry ids and are stored at most once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

log = logging.getLogger("tracker.spool")

ACTIVE = "active-"
READY = "ready-"
OPENING = "opening-"  # a segment being created: empty, locked, renamed to active at once
DRAIN_LOCK = "drain.lock"  # held by the one process draining this spool
SUFFIX = ".jsonl"
# Bytes of segments one drain reads at most, so a backlog (after a database outage) is
# drained in bounded memory, a slice at a time. A single larger segment is still read.
DRAIN_BYTES = 2 * 1024 * 1024  # about 5,000 events: a drain's memory stays small
# Seconds after which a half-written retry file can only be the remains of a crash.
PARTIAL_EXPIRY = 60.0
# Events that could not be stored (a bug or a hostile beacon the checks missed) are set
# aside here, and deleted after a week: they hold personal data.
QUARANTINE = "quarantine"
QUARANTINE_DAYS = 7


class Spool:
    """Append events as JSON lines; drain them in batches to a handler."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        # True when the last drain left ready segments behind for want of budget.
        self.backlog = False

    def _open_segment(self) -> int:
        # Created and locked under a name no drainer looks at, then renamed: a segment is
        # never seen unlocked under its active name, so a drainer cannot take a live
        # writer's segment for a dead one's (it would rename it to ready and drain it
        # while the writer still appends to it).
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        opening = self.directory / f"{OPENING}{name}"
        fd = os.open(opening, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._segment = self.directory / f"{ACTIVE}{name}{SUFFIX}"
        os.rename(opening, self._segment)
        return fd

    def append(self, record: dict[str, Any]) -> None:
        """Write one event; it is on disk (in the OS page cache) when this returns."""
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        with self._lock:
            # A forked worker (gunicorn) must not share its parent's segment and lock.
            if self._fd is None or self._pid != os.getpid():
                self._fd, self._pid = self._open_segment(), os.getpid()
            os.write(self._fd, line)

    def rotate(self) -> None:
        """Close this process's active segment and mark it ready to drain."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return
            fd, segment, self._fd = self._fd, self._segment, None
            os.rename(segment, segment.with_name(segment.name.replace(ACTIVE, READY, 1)))
            os.close(fd)

    def _adopt_orphans(self) -> None:
        """Mark ready the active segments whose writer is gone (their lock is free)."""
        for pattern in (f"partial-*{SUFFIX}", f"{OPENING}*"):
            # Left by a crash: retries half written (their events are still in the segments
            # being drained then, not yet deleted, so they are replayed from there), or a
            # segment created but not yet named active (empty: nothing was written to it).
            for path in self.directory.glob(pattern):
                with suppress(FileNotFoundError):
                    if time.time() - path.stat().st_mtime > PARTIAL_EXPIRY:
                        path.unlink()
        for path in self.directory.glob(f"{ACTIVE}*{SUFFIX}"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            with suppress(FileNotFoundError):
                os.rename(path, path.with_name(path.name.replace(ACTIVE, READY, 1)))
            os.close(fd)

    @contextmanager
    def _claimed(self, budget: int) -> Iterator[list[tuple[Path, int]]]:
        """Lock ready segments no other drainer holds, up to `budget` bytes; release them
        afterwards."""
        claimed: list[tuple[Path, int]] = []
        self.backlog = False
        try:
            for path in sorted(self.directory.glob(f"{READY}*{SUFFIX}")):
                if claimed and budget <= 0:
                    self.backlog = True
                    break
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                if not path.exists():  # drained and unlinked by someone else meanwhile
                    os.close(fd)
                    continue
                claimed.append((path, fd))
                budget -= os.fstat(fd).st_size
            yield claimed
        finally:
            for _, fd in claimed:
                os.close(fd)

    def drain(self, handler: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
              budget: int = DRAIN_BYTES) -> int:
        """Pass the ready events (up to `budget` bytes of segments) to `handler` in one call,
        then delete their segments; `backlog` says whether ready segments were left.

        The handler commits what it can and returns the events to keep for a later drain
        (e.g. an engagement whose pageview another process has not stored yet); they are
        written to a new ready segment before the drained ones are deleted.
        """
        self.rotate()  # always: this process's events must reach whichever drainer runs
        with self._draining() as ours:
            if not ours:
                self.backlog = False
                return 0  # another process of this machine is draining the same spool
            return self._drain(handler, budget)

    @contextmanager
    def _draining(self) -> Iterator[bool]:
        """One drainer per spool at a time (a fresh open file per call, so that threads of
        one process exclude each other too): two drainers would only wait for each other
        on the database, and the one kept waiting would hold its events in memory."""
        fd = os.open(self.directory / DRAIN_LOCK, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _drain(self, handler: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
               budget: int) -> int:
        self._adopt_orphans()
        with self._claimed(budget) as segments:
            if not segments:
                return 0
            events: list[dict[str, Any]] = []
            for path, _ in segments:
                events.extend(_read_events(path))
            events.sort(key=lambda e: e.get("received_at", ""))
            kept = handler(events) if events else []
            if kept:
                # Written under another name first: a ready segment is complete when seen.
                name = f"retry-{secrets.token_hex(6)}{SUFFIX}"
                partial = self.directory / f"partial-{name}"
                partial.write_text("".join(json.dumps(e) + "\n" for e in kept))
                os.rename(partial, self.directory / f"{READY}{name}")
            for path, _ in segments:
                path.unlink(missing_ok=True)
            return len(events) - len(kept)

    @property
    def quarantine_dir(self) -> Path:
        return self.directory / QUARANTINE

    def quarantine(self, events: list[dict[str, Any]]) -> None:
        """Set aside events that cannot be stored, for an operator to look at (they hold
        personal data: expire_quarantine deletes them after QUARANTINE_DAYS)."""
        self.quarantine_dir.mkdir(exist_ok=True)
        path = self.quarantine_dir / f"{int(time.time())}-{secrets.token_hex(6)}{SUFFIX}"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))

    def expire_quarantine(self, now: float | None = None) -> int:
        """Delete quarantined events older than QUARANTINE_DAYS; return how many files."""
        cutoff = (now or time.time()) - QUARANTINE_DAYS * 86400
        gone = 0
        for path in self.quarantine_dir.glob(f"*{SUFFIX}"):
            with suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    gone += 1
        return gone

    def pending(self) -> int:
        """Number of spool segments not yet drained (for health checks)."""
        return sum(1 for _ in self.directory.glob(f"*{SUFFIX}"))


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                events.append(json.loads(line))
            except ValueError:
                # Only a line cut short by a crash mid-write can be unreadable, and that
                # event was never acknowledged: the process died before answering.
                log.warning("skipping torn line %d of spool segment %s", number, path.name)
    return events
