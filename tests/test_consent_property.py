"""Property: nothing personal is stored or logged without a live analytics consent.

Hypothesis plays arbitrary sequences of decisions, withdrawals, beacons (with the visitor's
own live consent, a superseded one, another visitor's, or none) and drains. Each beacon comes
from its own IP address and user agent, so we can search every table, the spool and the logs
for the traces of the beacons that had no right to be recorded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.helpers import beacon, decide
from tracker.extensions import db
from tracker.models import Pageview, Visit
from tracker.services import runtime

VISITORS = [f"{i:x}" * 32 for i in range(1, 5)]
actions = st.lists(
    st.one_of(
        st.tuples(st.just("decide"), st.integers(0, 3), st.booleans(), st.booleans()),
        st.tuples(st.just("beacon"), st.integers(0, 3),
                  st.sampled_from(["own", "superseded", "other", "none"])),
        st.tuples(st.just("drain")),
    ),
    max_size=20,
)


def _reset() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()
    runtime.ingest().forget_pages()


def _everything_stored(app) -> str:
    dump = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            dump.append(repr(tuple(row)))
    spool = Path(app.config["TRACKER_SPOOL_DIR"])
    dump.extend(p.read_text() for p in spool.glob("*"))
    return "\n".join(dump)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=actions)
def test_no_trace_without_live_consent(app, client, caplog, script):
    _reset()
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    history: dict[int, list[dict]] = {}  # every decision of each visitor, latest last
    accepted: dict[str, int] = {}
    refused_traces: list[str] = []
    for number, action in enumerate(script):
        if action[0] == "decide":
            _, who, analytics, location = action
            # Each decision from its own address: the per-IP consent rate limit is real.
            body = decide(client, analytics=analytics, location=location,
                          visitor_id=VISITORS[who], ip=f"203.0.113.{number + 100}")
            history.setdefault(who, []).append({**body, "analytics": analytics})
        elif action[0] == "beacon":
            _, who, which = action
            own = history.get(who, [])
            if which == "own" and own:
                consent = own[-1]
            elif which == "superseded" and len(own) > 1:
                consent = own[0]
            elif which == "other" and any(k != who and v for k, v in history.items()):
                consent = next(v[-1] for k, v in history.items() if k != who and v)
            else:
                consent = {"consent_id": None}
            # Fixed-width, so no trace is a prefix of another (.1 vs .10).
            ip, agent = f"198.51.100.{number + 100}", f"Mozilla/5.0 marker-{number:03d}"
            response = beacon(client, {**consent, "visitor_id": VISITORS[who]}, ip=ip,
                              user_agent=agent)
            live = which == "own" and bool(own) and own[-1]["analytics"]
            assert response.status_code == (202 if live else 403)
            if live:
                accepted[VISITORS[who]] = accepted.get(VISITORS[who], 0) + 1
            else:
                refused_traces += [ip, agent]
        else:
            runtime.ingest().drain()
    runtime.ingest().drain()

    stored = dict(db.session.execute(
        select(Visit.visitor_id, func.count(Pageview.id))
        .join(Pageview, Pageview.visit_id == Visit.id)
        .group_by(Visit.visitor_id)).all())
    assert stored == accepted
    everything = _everything_stored(app) + "\n".join(r.getMessage() for r in caplog.records)
    for trace in refused_traces:
        assert trace not in everything
    never_granted = {VISITORS[w] for w, h in history.items() if not any(d["analytics"]
                                                                         for d in h)}
    never_granted |= {v for i, v in enumerate(VISITORS) if i not in history}
    for visitor_id in never_granted:
        assert visitor_id not in everything
    refused_ips = refused_traces[::2]  # (ip, agent) pairs
    assert db.session.scalar(select(Visit.id).where(Visit.ip.in_(refused_ips))) is None
    assert db.session.query(Pageview).count() == sum(accepted.values())
