"""`python -m bench [--quick] [--suite NAME ...]`: run the benchmark suites and print them."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time

from bench.harness import Figure, table


def _ingest(args: argparse.Namespace) -> list[Figure]:
    from bench import ingest

    return ingest.run(ingest.Options.make(args.quick, drainer=args.drainer, engine=args.engine,
                                          seconds=args.seconds, rounds=args.rounds,
                                          volumes=tuple(args.volumes or ())))


def _breakdown(args: argparse.Namespace) -> list[Figure]:
    from bench import breakdown

    return breakdown.run(args.quick)


def _banner(args: argparse.Namespace) -> list[Figure]:
    from bench import banner

    return banner.run(args.quick)


def _reports(args: argparse.Namespace) -> list[Figure]:
    from bench import reports

    return reports.run(reports.Options.make(args.quick, engine=args.engine))


# name -> (title, function(args) -> figures). A new suite (e.g. the reports over 1M and 10M
# pageviews against DuckDB) is a module with a `run` and one line here; see bench/README.md.
SUITES = {
    "ingest": ("Ingest: /api/collect (b) against a bare Flask 204 endpoint (a)", _ingest),
    "breakdown": ("Where a beacon's CPU goes, in-process (a: the bare Flask app)", _breakdown),
    "banner": ("Footprint: the banner script on the wire", _banner),
    "reports": ("Reports (b) against DuckDB over Parquet (a), 1M and 10M pageviews", _reports),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few minutes)")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="run only this suite (repeatable)")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"),
                        help="database of the collector (default: sqlite)")
    parser.add_argument("--drainer", choices=("thread", "process"),
                        help="drain in `flask ingest` (default, as deployed) or in each worker")
    parser.add_argument("--seconds", type=float, help="length of each load round")
    parser.add_argument("--rounds", type=int, help="alternating rounds of (a) and (b)")
    parser.add_argument("--volumes", type=int, nargs="+",
                        help="beacon counts at which peak memory is read")
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, so servers and temporary databases are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(machine(), flush=True)
    began = time.monotonic()
    for name in args.suite or list(SUITES):
        title, suite = SUITES[name]
        started = time.monotonic()
        figures = suite(args)
        print(table(title, figures))
        print(f"({name}: {time.monotonic() - started:.0f} s)\n", flush=True)
    print(f"total {time.monotonic() - began:.0f} s; load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    return 0


def machine() -> str:
    """What the figures were measured on: they only compare within one run."""
    from importlib.metadata import version

    return (f"bench: {platform.node()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.2f} at the start; Python {platform.python_version()}, "
            f"Flask {version('flask')}, gunicorn {version('gunicorn')}, "
            f"SQLAlchemy {version('sqlalchemy')}\n")


if __name__ == "__main__":
    sys.exit(main())
