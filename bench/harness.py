"""What every suite needs: free ports, server processes, peak memory, and the report table."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the benchmark dies, however it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, process: subprocess.Popen | None = None,
                  ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class Server:
    """A gunicorn process serving one WSGI app on a loopback port."""

    app: str
    env: Mapping[str, str]
    workers: int
    worker_class: str = "sync"
    threads: int = 1
    log: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> Server:
        command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(self.workers), "--worker-class", self.worker_class,
                   "--threads", str(self.threads), "--backlog", "2048",
                   "--log-level", os.environ.get("BENCH_GUNICORN_LOG", "warning"),
                   # For profiling, e.g. BENCH_GUNICORN_ARGS="-c hooks.py" (see README).
                   *os.environ.get("BENCH_GUNICORN_ARGS", "").split(), self.app]
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **self.env},
                                        stdout=output, stderr=output,
                                        preexec_fn=die_with_parent)
        wait_for_port(self.port, process=self.process)
        self.wait_until_booted()
        return self

    def wait_until_booted(self, timeout: float = 60.0) -> None:
        """Wait until every worker has loaded the app (the master listens long before):
        all workers exist and their CPU time stops growing."""
        deadline = time.monotonic() + timeout
        previous = -1.0
        while time.monotonic() < deadline:
            time.sleep(0.3)
            pids = self.worker_pids()
            if len(pids) < self.workers:
                continue
            used = cpu_seconds(pids)
            if used - previous < 0.02:
                return
            previous = used
        raise TimeoutError("gunicorn workers did not finish booting")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (all their threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def peak_rss_mib(pid: int, field: str = "VmHWM") -> float:
    """The process's peak resident set size (VmHWM) in MiB; `field="VmRSS"` for the
    current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


@dataclass
class Figure:
    """One measured figure: a ratio against its baseline, the goal, and the raw numbers."""

    name: str
    ratio: float | None
    goal: str
    met: bool | None
    detail: str

    def line(self) -> str:
        ratio = "      -" if self.ratio is None else f"{self.ratio:7.3f}"
        verdict = {True: "met", False: "NOT MET", None: ""}[self.met]
        return f"{self.name:<34} {ratio}  {self.goal:<18} {verdict:<8} {self.detail}"


def table(title: str, figures: Sequence[Figure]) -> str:
    header = f"{'figure':<34} {'ratio':>7}  {'goal':<18} {'':<8} absolute"
    lines = [f"== {title}", header, "-" * len(header)]
    lines += [figure.line() for figure in figures]
    return "\n".join(lines)
