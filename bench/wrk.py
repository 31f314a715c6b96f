"""Drive wrk (the load generator from Debian's packages) with a generated Lua script."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MARK = "BENCH_JSON "

# The Lua side: every request is one beacon of a random visitor (who keeps its own consent,
# IP address and user agent) on a weighted-random page, with a unique event id. `done`
# prints one JSON line with wrk's own counters and latency percentiles.
_SCRIPT = r"""
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local answered = nil

function init(args)
  math.randomseed((tid or 0) * 7919 + 17)
  if IDS ~= "" then
    answered = io.open(IDS .. "-" .. tid, "a")
    answered:setvbuf("full")
  end
end

-- Every event id answered 2xx, so loss is counted beacon by beacon (wrk's own count misses
-- the answers still in flight when it stops, which the server did store).
function response(status, headers, body)
  if answered ~= nil and status >= 200 and status < 300 then
    local id = string.match(body, '"event_id":"(%x+)"')
    if id ~= nil then
      answered:write(id, "\n")
    end
  end
end

function request()
  counter = counter + 1
  local v = VISITORS[math.random(#VISITORS)]
  local p = PAGES[math.random(#PAGES)]
  local event_id = string.format("%s%08x%08x%08x", NONCE, tid, counter, math.random(0, 2147483646))
  local body = '{"type":"pageview","event_id":"' .. event_id .. '","visitor_id":"' .. v[2]
    .. '","consent_id":"' .. v[1] .. '","url":"' .. SITE .. p[1] .. '","referrer":"'
    .. REFERRERS[math.random(#REFERRERS)] .. '","title":"' .. p[2] .. '"}'
  local headers = {["Content-Type"] = "text/plain;charset=UTF-8", ["Origin"] = SITE,
                   ["User-Agent"] = AGENTS[v[4]], ["X-Forwarded-For"] = v[3]}
  return wrk.format("POST", "/api/collect", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,'
    .. '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,'
    .. '"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _lua(value: object) -> str:
    """A Lua literal for a str, int or (nested) sequence."""
    if isinstance(value, str):
        return '"' + "".join(c if c.isascii() and c.isprintable() and c not in '"\\'
                             else "".join(f"\\{b}" for b in c.encode()) for c in value) + '"'
    if isinstance(value, int):
        return str(value)
    return "{" + ",".join(_lua(item) for item in value) + "}"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Load:
    """What the beacons are made of."""

    site: str
    visitors: Sequence[tuple[str, str, str, int]]  # consent id, visitor id, IP, agent (1-based)
    agents: Sequence[str]
    pages: Sequence[tuple[str, str]]  # path, title; repeated entries weigh more
    referrers: Sequence[str]

    def script(self, path: Path, answered: Path | None = None) -> Path:
        """Write the Lua script with a fresh event-id prefix, so no two runs share ids; the
        ids answered 2xx are appended to files `answered`-<thread>."""
        data = (f"SITE = {_lua(self.site)}\nNONCE = {_lua(secrets.token_hex(4))}\n"
                f"IDS = {_lua(str(answered) if answered else '')}\n"
                f"VISITORS = {_lua(self.visitors)}\nAGENTS = {_lua(self.agents)}\n"
                f"PAGES = {_lua(self.pages)}\nREFERRERS = {_lua(self.referrers)}\n")
        path.write_text(data + _SCRIPT)
        return path


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    ok: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        return (f"{self.rate:,.0f} req/s, p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms "
                f"({self.requests:,} requests, {self.ok:,} 2xx, {self.errors:,} errors)")


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is missing: run scripts/ensure-system-deps "
                         "(Debian: apt-get install -y wrk)")
    return found


def run(url: str, script: Path, *, seconds: float, connections: int, threads: int = 1,
        ) -> Result:
    """Load `url` for `seconds` and return wrk's counts and latencies."""
    command = [wrk_binary(), "-t", str(threads), "-c", str(connections),
               "-d", f"{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script), url]
    completed = subprocess.run(command, capture_output=True, text=True)
    output = completed.stdout + completed.stderr
    line = next((x for x in output.splitlines() if x.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    raw = json.loads(line[len(MARK):])
    errors = (raw["connect_errors"] + raw["read_errors"] + raw["write_errors"]
              + raw["timeouts"])
    return Result(
        requests=raw["requests"], seconds=raw["duration_us"] / 1e6,
        ok=raw["requests"] - raw["non2xx"], errors=errors + raw["non2xx"],
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000, max_ms=raw["max_us"] / 1000,
    )


def answered_ids(answered: Path) -> set[str]:
    """The event ids wrk saw answered 2xx (written by the script's response hook)."""
    ids: set[str] = set()
    for path in answered.parent.glob(answered.name + "-*"):
        ids.update(path.read_text().split())
    return ids
