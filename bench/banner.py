"""The banner's weight on the wire: its script minified and gzipped, against the 5 KB goal."""

from __future__ import annotations

import gzip
import re

from bench.harness import ROOT, Figure

BANNER = ROOT / "static" / "consent-banner.js"
GOAL = 5 * 1024


def minify(source: str) -> tuple[str, str]:
    """rjsmin when installed; else drop comments and indentation (a safe, weaker approach)."""
    try:
        import rjsmin
    except ImportError:
        without_blocks = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
        lines = (line.strip() for line in without_blocks.splitlines())
        # Only whole-line // comments: a // inside a string or regex stays untouched.
        kept = [line for line in lines if line and not line.startswith("//")]
        return "\n".join(kept), "comments and indentation stripped (rjsmin not installed)"
    return rjsmin.jsmin(source), f"rjsmin {getattr(rjsmin, '__version__', '')}".strip()


def run(quick: bool) -> list[Figure]:
    source = BANNER.read_text()
    small, how = minify(source)
    size = len(gzip.compress(small.encode(), compresslevel=9))
    return [Figure("banner min+gzip (vs 5 KB)", size / GOAL, "<= 1.0 (5 KB)", size <= GOAL,
                   f"{size:,} B gzipped ({len(source):,} B source, {len(small):,} B minified "
                   f"by {how}; gzip -9)")]
