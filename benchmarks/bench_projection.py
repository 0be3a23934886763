"""How fast do logs project into DuckDB, and how fast is the SLA report over the result?

Builds a synthetic ``day`` log directly as events (no engine: the question here is the
projection, not routing): ``--interactions`` conversations (2,000,000 by default,
50,000 with ``--quick``) over 24 h of event time on four tenants, every channel,
with the shapes the projection has to fold: answered after an offer (with wrap-up),
auto-assigned written work, bot-resolved, bot hand-off to a human, abandoned (some
short), callbacks, cold transfers, and a ``Tick`` every second. Each input is
followed by the decisions an engine would append, with the same time.

Then it times:

- ``ingest_events_per_s``: ``Projector.project`` over the whole log into a new
  DuckDB file (decode, fold, bulk insert, one transaction per 200,000 events);
- ``report_seconds``: the service-level + wait-percentile report
  (``omniroute report``, by channel) on the projected database, best of 3;
- ``report_by_interval_seconds``: the same by interval (96 per day x tenant).

Usage::

    python benchmarks/bench_projection.py [--quick] [--json] [--interactions N] [--keep DIR]
                                          [--log DIR/day.olog]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import Projector, connect_readonly, service_report
from omniroute.engine import events as ev
from omniroute.engine.policy import parse_policy

POLICY = parse_policy(
    """
[queues.sales]
sla_s = { voice = 20, webchat = 30 }
[queues.support]
bot_first = true
[queues.backoffice]
offer_mode = "auto"
wrap_up_s = 0
"""
)
DAY_MS = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
TENANTS = ("acme", "globex", "initech", "umbrella")
AGENTS_PER_TENANT = 500
BOTS_PER_TENANT = 4

# shapes: answered, auto, bot_resolved, handoff, abandoned, callback, transfer
_SHAPES = np.array([0.62, 0.10, 0.05, 0.06, 0.10, 0.03, 0.04])
_LIVE = ("voice", "video", "webchat", "whatsapp", "sms", "messenger", "telegram")
_WRITTEN = ("email", "social", "task")


def _agents(log: FileLog) -> None:
    batch: list[ev.Event] = []
    for tenant in TENANTS:
        for i in range(AGENTS_PER_TENANT):
            aid = f"a{i:04d}"
            batch.append(
                ev.AgentRegistered(
                    tenant=tenant, ts=T0, agent_id=aid, skills={"sales": 3, "support": 2}
                )
            )
            batch.append(
                ev.AgentStatusChanged(tenant=tenant, ts=T0, agent_id=aid, status="available")
            )
        for i in range(BOTS_PER_TENANT):
            bid = f"bot{i}"
            batch.append(ev.AgentRegistered(tenant=tenant, ts=T0, agent_id=bid, kind="bot"))
            batch.append(
                ev.AgentStatusChanged(tenant=tenant, ts=T0, agent_id=bid, status="available")
            )
    log.append(batch)


def build_log(path: Path, interactions: int, seed: int = 1) -> int:
    """Write the synthetic log; return its number of events."""
    rng = np.random.default_rng(seed)
    n = interactions
    arrival = np.sort(rng.integers(0, DAY_MS - 3_600_000, n)) + T0
    shape = rng.choice(len(_SHAPES), n, p=_SHAPES / _SHAPES.sum())
    tenant = rng.integers(0, len(TENANTS), n)
    live = rng.integers(0, len(_LIVE), n)
    written = rng.integers(0, len(_WRITTEN), n)
    wait = rng.exponential(25_000, n).astype(np.int64) + 1
    handle = rng.integers(60_000, 600_000, n)
    wrap = rng.integers(5_000, 30_000, n)
    agent = rng.integers(0, AGENTS_PER_TENANT, n)
    agent2 = (agent + 1 + rng.integers(0, AGENTS_PER_TENANT - 1, n)) % AGENTS_PER_TENANT
    bot = rng.integers(0, BOTS_PER_TENANT, n)
    customer = rng.integers(0, max(1, n // 3), n)
    patience = rng.integers(1_000, 120_000, n)

    # units: (ts, interaction, step) -> a group [input, *decisions] with one time
    ts_list: list[np.ndarray] = []
    who_list: list[np.ndarray] = []
    step_list: list[np.ndarray] = []

    def unit(mask: np.ndarray, ts: np.ndarray, step: int) -> None:
        idx = np.nonzero(mask)[0]
        ts_list.append(ts[idx])
        who_list.append(idx)
        step_list.append(np.full(len(idx), step, dtype=np.int8))

    every = np.ones(n, dtype=bool)
    answered = (shape == 0) | (shape == 5) | (shape == 6)
    unit(every, arrival, 0)  # arrive (+ queued, + bot/auto assignment)
    unit(answered | (shape == 3), arrival + wait, 1)  # an offer after waiting (tick)
    unit(answered | (shape == 3), arrival + wait + 3_000, 2)  # accepted -> assigned
    t_end = arrival + wait + 3_000 + handle
    unit((shape == 0) | (shape == 5) | (shape == 3), t_end, 3)  # ended -> wrap-up
    unit((shape == 0) | (shape == 5) | (shape == 6) | (shape == 3), t_end + wrap, 4)
    unit(shape == 1, arrival + handle, 5)  # auto: ended, no wrap-up
    unit(shape == 2, arrival + handle // 2, 5)  # bot resolved
    unit(shape == 3, arrival + wait // 2 + 1, 6)  # bot hands off (before the offer)
    unit(shape == 4, arrival + patience, 7)  # abandoned
    unit(shape == 5, arrival + wait // 2 + 1, 8)  # callback requested
    unit(shape == 6, t_end - handle // 2, 9)  # cold transfer -> queued
    unit(shape == 6, t_end - handle // 2 + 5_000, 10)  # offered to the second agent
    unit(shape == 6, t_end - handle // 2 + 8_000, 11)  # accepted -> assigned
    unit(shape == 6, t_end, 3)  # ended by the second agent -> wrap-up
    ticks = np.arange(T0 + 1000, T0 + DAY_MS, 1000, dtype=np.int64)
    ts_list.append(ticks)
    who_list.append(np.full(len(ticks), -1, dtype=np.int64))
    step_list.append(np.full(len(ticks), 12, dtype=np.int8))

    ts_all = np.concatenate(ts_list)
    who_all = np.concatenate(who_list)
    step_all = np.concatenate(step_list)
    order = np.lexsort((step_all, who_all, ts_all))
    ts_all, who_all, step_all = ts_all[order], who_all[order], step_all[order]

    tenants = [TENANTS[i] for i in tenant.tolist()]
    chans = [
        _WRITTEN[w] if s == 1 else _LIVE[v]
        for s, v, w in zip(shape.tolist(), live.tolist(), written.tolist(), strict=True)
    ]
    queues = ["backoffice" if s == 1 else "support" if s in (2, 3) else "sales"
              for s in shape.tolist()]  # fmt: skip
    agents = [f"a{a:04d}" for a in agent.tolist()]
    agents2 = [f"a{a:04d}" for a in agent2.tolist()]
    bots = [f"bot{b}" for b in bot.tolist()]
    shapes = shape.tolist()
    arrivals = arrival.tolist()

    count = 0
    with FileLog(path, fsync="never") as log:
        _agents(log)
        count += len(TENANTS) * (AGENTS_PER_TENANT + BOTS_PER_TENANT) * 2
        batch: list[ev.Event] = []
        for ts, i, step in zip(ts_all.tolist(), who_all.tolist(), step_all.tolist(),
                               strict=True):  # fmt: skip
            if step == 12:
                batch.append(ev.Tick(tenant=TENANTS[0], ts=ts))
            else:
                t, cid, s = tenants[i], f"c{i}", shapes[i]
                if step == 0:
                    ch = chans[i]
                    q = queues[i]
                    batch.append(ev.ConversationArrived(
                        tenant=t, ts=ts, conversation_id=cid, channel=ch,  # type: ignore[arg-type]
                        contact=ev.Contact(ch, f"{ch}:{customer[i]}"),  # type: ignore[arg-type]
                        queue=q, customer_id=f"crm{customer[i]}" if i % 2 else None,
                    ))  # fmt: skip
                    batch.append(ev.ConversationQueued(tenant=t, ts=ts, conversation_id=cid,
                                                       queue=q))  # fmt: skip
                    if s == 1:
                        batch.append(ev.ConversationAssigned(
                            tenant=t, ts=ts, conversation_id=cid, agent_id=agents[i], wait_ms=0
                        ))  # fmt: skip
                    elif s in (2, 3):
                        batch.append(ev.ConversationAssigned(
                            tenant=t, ts=ts, conversation_id=cid, agent_id=bots[i], wait_ms=0
                        ))  # fmt: skip
                elif step == 1 or step == 10:
                    a = agents2[i] if step == 10 else agents[i]
                    batch.append(ev.Tick(tenant=t, ts=ts))
                    batch.append(ev.ConversationOffered(
                        tenant=t, ts=ts, conversation_id=cid, agent_id=a, score=1.0,
                        why="balanced", deadline=ts + 20_000,
                    ))  # fmt: skip
                elif step == 2 or step == 11:
                    a = agents2[i] if step == 11 else agents[i]
                    batch.append(ev.OfferAccepted(tenant=t, ts=ts, conversation_id=cid,
                                                  agent_id=a))  # fmt: skip
                    batch.append(ev.ConversationAssigned(
                        tenant=t, ts=ts, conversation_id=cid, agent_id=a,
                        wait_ms=ts - arrivals[i],
                    ))  # fmt: skip
                elif step == 3 or step == 5:
                    batch.append(ev.ConversationEnded(tenant=t, ts=ts, conversation_id=cid))
                elif step == 4:
                    a = agents2[i] if s == 6 else agents[i]
                    batch.append(ev.WrapUpCompleted(tenant=t, ts=ts, conversation_id=cid,
                                                    agent_id=a))  # fmt: skip
                elif step == 6:
                    batch.append(ev.HandoffRequested(tenant=t, ts=ts, conversation_id=cid,
                                                     agent_id=bots[i]))  # fmt: skip
                    batch.append(
                        ev.ConversationQueued(
                            tenant=t, ts=ts, conversation_id=cid, queue="support", reason="handoff"
                        )
                    )
                elif step == 7:
                    batch.append(ev.CustomerAbandoned(tenant=t, ts=ts, conversation_id=cid))
                elif step == 8:
                    batch.append(ev.CallbackRequested(tenant=t, ts=ts, conversation_id=cid))
                    batch.append(
                        ev.ConversationQueued(
                            tenant=t, ts=ts, conversation_id=cid, queue="sales", reason="callback"
                        )
                    )
                elif step == 9:
                    batch.append(
                        ev.TransferRequested(
                            tenant=t,
                            ts=ts,
                            conversation_id=cid,
                            agent_id=agents[i],
                            to_queue="sales",
                        )
                    )
                    batch.append(
                        ev.ConversationQueued(
                            tenant=t, ts=ts, conversation_id=cid, queue="sales", reason="transfer"
                        )
                    )
            if len(batch) >= 20_000:
                log.append(batch)
                count += len(batch)
                batch = []
        if batch:
            log.append(batch)
            count += len(batch)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50,000 interactions (< 30 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--interactions", type=int, help="override the number of interactions")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the log and database here")
    parser.add_argument(
        "--log", type=Path, metavar="PATH", help="project this log (made by --keep) instead"
    )
    args = parser.parse_args(argv)
    n = args.interactions or (50_000 if args.quick else 2_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="omniroute-bench-proj-"))
    workdir = args.keep or tmp
    workdir.mkdir(parents=True, exist_ok=True)
    log_path, db_path = args.log or workdir / "day.olog", workdir / "day.duckdb"
    for p in (
        (db_path, Path(str(db_path) + ".wal"))
        if args.log
        else (log_path, db_path, Path(str(db_path) + ".wal"))
    ):
        p.unlink(missing_ok=True)

    def say(msg: str) -> None:
        if not args.json:
            print(msg, flush=True)

    try:
        if args.log is None:
            started = time.perf_counter()
            events = build_log(log_path, n)
            say(
                f"log: {events:,} events for {n:,} interactions in "
                f"{time.perf_counter() - started:.1f} s ({log_path.stat().st_size / 1e6:.0f} MB)"
            )
        with FileLog(log_path, readonly=True) as log, Projector(db_path, POLICY) as projector:
            stats = projector.project(log)
        size = db_path.stat().st_size
        say(
            f"projected {stats.events:,} events in {stats.seconds:.2f} s: "
            f"{stats.events_per_s:,.0f} events/s ({size / 1e6:.0f} MB database)"
        )
        con = connect_readonly(db_path)
        try:
            projected = con.execute(
                "SELECT count(*), count(*) FILTER (closed_at IS NULL) FROM interactions"
            ).fetchone()
            assert projected is not None
            timings: dict[str, float] = {}
            for name, by in (("report_seconds", ("channel",)),
                             ("report_by_interval_seconds", ("interval",))):  # fmt: skip
                best = float("inf")
                for _ in range(3):
                    t = time.perf_counter()
                    table = service_report(con, by=by)
                    best = min(best, time.perf_counter() - t)
                timings[name] = best
                say(f"{name}: {best:.3f} s ({len(table.rows)} rows)")
        finally:
            con.close()
        result = {
            "interactions": int(projected[0]),
            "open_at_end": int(projected[1]),
            "events": stats.events,
            "ingest_seconds": round(stats.seconds, 3),
            "ingest_events_per_s": round(stats.events_per_s),
            "report_seconds": round(timings["report_seconds"], 4),
            "report_by_interval_seconds": round(timings["report_by_interval_seconds"], 4),
            "database_mb": round(size / 1e6, 1),
            "cpus": os.cpu_count(),
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(json.dumps(result, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
