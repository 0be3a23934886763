"""The wallboard page, rendered on the server: complete at first paint, without JS.

:func:`sections` renders each part of the board on its own (the stream pushes them as
they change: the client swaps each ``data-section`` element's content); :func:`page`
is the whole document around them. Every value from the state is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from omniroute.adapters.reporting import format_seconds
from omniroute.adapters.reporting.live import AgentNow, Breach, LiveState, QueueNow

from .chart import level_chart
from .filters import Filters

__all__ = ["AGENT_SECTIONS", "BOARD_SECTIONS", "page", "problem_page", "sections"]

BOARD_SECTIONS = ("asof", "summary", "queues", "chart", "breaches")
"""The aggregate sections: pushed at most once a second."""
AGENT_SECTIONS = ("asof", "staff", "agents")
"""The agents' sections (their counts by status, their cards): pushed as soon as they
change."""

_STATUS_ORDER = ("available", "busy", "not_responding", "away", "offline")
_BREACHES_SHOWN = 20
_UNLIMITED = 10_000


def _secs(value: float | None) -> str:
    return "-" if value is None else escape(format_seconds(max(0.0, value)))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _time(t: dt.datetime) -> str:
    return t.strftime("%H:%M:%S")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())


def _level_class(level: float | None, state: str) -> str:
    return "" if level is None else f' class="sl sl-{_slug(state)}"'


# --- sections --------------------------------------------------------------------------------


def _summary(queues: Sequence[QueueNow]) -> str:
    oldest = max((q.oldest_wait_s for q in queues if q.oldest_wait_s is not None), default=None)
    contacts = sum(q.contacts_today for q in queues)
    answered = sum(q.answered_today for q in queues)
    abandoned = sum(q.abandoned_today for q in queues)
    worst = "breach" if any(q.sla_state == "breach" for q in queues) else (
        "warn" if any(q.sla_state == "warn" for q in queues) else "ok"
    )  # fmt: skip
    tiles = [
        ("Waiting", str(sum(q.waiting for q in queues)), f"tile-{worst}", "waiting-total"),
        ("Longest wait", _secs(oldest), f"tile-{worst}", "oldest"),
        ("Handling", str(sum(q.handling for q in queues)), "", "handling"),
        ("Contacts today", f"{contacts:,}", "", "contacts"),
        ("Answered", f"{answered:,}", "", "answered"),
        ("Abandoned", f"{abandoned:,}", "", "abandoned"),
    ]
    return _tiles(tiles)


def _staff(agents: Sequence[AgentNow]) -> str:
    by_group: dict[str, int] = {}
    for a in agents:
        by_group[_group(a)] = by_group.get(_group(a), 0) + 1
    silent = sum(a.not_responding for a in agents)
    return _tiles([
        *(
            (group.replace("_", " ").capitalize(), str(n), f"tile-status-{_slug(group)}", "")
            for group, n in sorted(by_group.items(), key=lambda kv: _status_key(kv[0]))
            if group != "not_responding"
        ),
        ("Not responding", str(silent), "tile-breach" if silent else "", "silent"),
    ])  # fmt: skip


def _tiles(tiles: Sequence[tuple[str, str, str, str]]) -> str:
    """(label, value, class, data-field) as tiles."""
    return "".join(
        f'<div class="tile {cls}"{f" data-field={field!r}" if field else ""}>'
        f'<div class="tile-value">{value}</div><div class="tile-label">{escape(label)}</div></div>'
        for label, value, cls, field in tiles
    )


def _queue_row(q: QueueNow, filters: Filters) -> str:
    def link(name: str, value: str) -> str:
        query = Filters(**{**dict(filters.items()), name: value}).query()
        return f'<a href="?{escape(query)}">{escape(value)}</a>'

    state = _slug(q.sla_state)
    key = escape(f"{q.tenant}/{q.queue}/{q.channel}")
    return (
        f'<tr class="row-{state}" data-queue="{key}">'
        f"<td>{link('tenant', q.tenant)}</td><td>{link('queue', q.queue)}</td>"
        f"<td>{link('channel', q.channel)}</td>"
        f'<td class="num big" data-field="waiting">{q.waiting}</td>'
        f'<td class="num" data-field="oldest">{_secs(q.oldest_wait_s)}</td>'
        f'<td class="num">{q.handling}</td>'
        f'<td class="num"><span{_level_class(q.service_level_15m, state)}>'
        f"{_pct(q.service_level_15m)}</span></td>"
        f'<td class="num">{_pct(q.service_level_60m)}</td>'
        f'<td class="num">{_pct(q.service_level_today)}</td>'
        f'<td class="num dim">{_secs(q.sla_target_s)}</td>'
        f'<td class="num">{_pct(q.abandon_rate_today)}</td>'
        f'<td class="num">{q.abandoned_15m}</td>'
        f'<td class="num">{_secs(q.ewt_s)}</td>'
        f'<td class="num">{q.contacts_today:,}</td>'
        f'<td><span class="badge badge-{state}">{escape(q.sla_state)}</span></td></tr>'
    )


_QUEUE_HEAD = (
    ("Tenant", ""), ("Queue", ""), ("Channel", ""), ("Waiting", "num"), ("Oldest", "num"),
    ("Handling", "num"), ("SL 15m", "num"), ("SL 60m", "num"), ("SL today", "num"),
    ("Target", "num"), ("Aband.", "num"), ("Ab. 15m", "num"), ("EWT", "num"),
    ("Today", "num"), ("State", ""),
)  # fmt: skip


def _queues(queues: Sequence[QueueNow], filters: Filters) -> str:
    head = "".join(f'<th class="{cls}">{name}</th>' for name, cls in _QUEUE_HEAD)
    rows = "".join(_queue_row(q, filters) for q in queues)
    if not queues:
        rows = f'<tr><td colspan="{len(_QUEUE_HEAD)}" class="empty">no queues</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _status_key(status: str) -> tuple[int, str]:
    order = _STATUS_ORDER.index(status) if status in _STATUS_ORDER else len(_STATUS_ORDER)
    return order, status


def _group(a: AgentNow) -> str:
    """The agent's group on the board: its status, ``busy`` for an available agent who
    holds conversations."""
    return "busy" if a.status == "available" and a.conversations else a.status


def _agent_card(a: AgentNow, tenants: int) -> str:
    name = a.name or a.agent_id
    who = name if tenants <= 1 else f"{a.tenant}/{name}"
    share = min(1.0, a.units_used / a.units_budget) if a.units_budget > 0 else 0.0
    flags = '<span class="flag">NOT RESPONDING</span>' if a.not_responding else ""
    kind = '<span class="kind">bot</span>' if a.kind == "bot" else ""
    convs = f'<span class="convs">{len(a.conversations)} conv</span>' if a.conversations else ""
    silent = " silent" if a.not_responding else ""
    budget = "∞" if a.units_budget >= _UNLIMITED else str(a.units_budget)  # a bot's
    units = f"{a.units_used}/{budget}"
    return (
        f'<div class="agent status-{_slug(_group(a))}{silent}" '
        f'data-agent="{escape(f"{a.tenant}/{a.agent_id}")}" data-status="{escape(a.status)}" '
        f'title="{escape(f"{a.tenant}/{a.agent_id} ({a.kind}, {a.status})")}">'
        f'<div class="agent-name">{escape(who)}{kind}</div>'
        f'<div class="agent-meta"><span class="agent-status">{escape(_group(a))}</span>'
        f'<span class="agent-time">{_secs(a.in_status_s)}</span></div>'
        f'<div class="load"><div class="load-bar" style="width:{100 * share:.0f}%"></div></div>'
        f'<div class="agent-meta"><span class="units">{units}</span>'
        f"{convs}</div>{flags}</div>"
    )


def _agents(agents: Sequence[AgentNow]) -> str:
    groups: dict[str, list[AgentNow]] = {}
    for a in agents:
        groups.setdefault(_group(a), []).append(a)
    tenants = len({a.tenant for a in agents})
    out = []
    for status in sorted(groups, key=_status_key):
        members = sorted(groups[status], key=lambda a: (not a.not_responding, -a.in_status_s))
        label = escape(status.replace("_", " "))
        out.append(
            f'<div class="group group-{_slug(status)}"><h3>{label} '
            f'<span class="count">{len(members)}</span></h3>'
        )
        if status == "offline":  # many, and only their names matter
            chips = "".join(
                f'<span class="chip" data-agent="{escape(f"{a.tenant}/{a.agent_id}")}" '
                f'data-status="offline">{escape(a.name or a.agent_id)}</span>'
                for a in members
            )
            out.append(f'<div class="chips">{chips}</div></div>')
        else:
            cards = "".join(_agent_card(a, tenants) for a in members)
            out.append(f'<div class="grid">{cards}</div></div>')
    return "".join(out) or '<p class="empty">no agents</p>'


def _breaches(breaches: Sequence[Breach]) -> str:
    latest = sorted(breaches, key=lambda b: b.at, reverse=True)[:_BREACHES_SHOWN]
    rows = "".join(
        f"<tr><td>{_time(b.at)}</td><td>{escape(b.queue)}</td><td>{escape(b.channel)}</td>"
        f'<td class="mono">{escape(b.conversation_id)}</td><td class="num">{_secs(b.waited_s)}</td>'
        "</tr>"
        for b in latest
    )
    if not rows:
        return '<p class="empty">none in the last hour</p>'
    more = len(breaches) - len(latest)
    tail = f'<p class="dim">and {more} earlier</p>' if more > 0 else ""
    head = "<tr><th>At</th><th>Queue</th><th>Channel</th><th>Conversation</th>"
    return f'<table>{head}<th class="num">Waited</th></tr>{rows}</table>{tail}'


def sections(state: LiveState, filters: Filters) -> dict[str, str]:
    """Each section's HTML, by its ``data-section`` name."""
    return {
        "asof": escape(state.as_of.strftime("%Y-%m-%d %H:%M:%S")),
        "summary": _summary(state.queues),
        "staff": _staff(state.agents),
        "queues": _queues(state.queues, filters),
        "agents": _agents(state.agents),
        "chart": level_chart(state.levels, state.as_of),
        "breaches": _breaches(state.breaches),
    }


# --- the document ------------------------------------------------------------------------------


def _select(name: str, values: Iterable[str], chosen: str | None) -> str:
    options = [f'<option value="">all {name}s</option>']
    for value in sorted(set(values) | ({chosen} if chosen else set())):
        selected = " selected" if value == chosen else ""
        options.append(f'<option value="{escape(value)}"{selected}>{escape(value)}</option>')
    return f'<select name="{name}" aria-label="{name}">{"".join(options)}</select>'


def _filters(filters: Filters, choices: LiveState) -> str:
    tenants = [q.tenant for q in choices.queues] + [a.tenant for a in choices.agents]
    clear = '<a class="clear" href="?">clear</a>' if filters else ""
    return (
        '<form class="filters" method="get">'
        f"{_select('tenant', tenants, filters.tenant)}"
        f"{_select('queue', (q.queue for q in choices.queues), filters.queue)}"
        f"{_select('channel', (q.channel for q in choices.queues), filters.channel)}"
        f'<button type="submit">apply</button>{clear}</form>'
    )


def page(state: LiveState, filters: Filters, choices: LiveState | None = None) -> str:
    """The whole page of ``state``; ``choices``: the unfiltered state the filter menus
    list (default: ``state``)."""
    parts = sections(state, filters)
    query = filters.query()
    events = "events" + (f"?{query}" if query else "")
    title = " · ".join(v for _, v in filters.items() if v) or "all queues"

    def section(name: str, tag: str = "div", cls: str = "") -> str:
        return f'<{tag} class="{cls}" data-section="{name}">{parts[name]}</{tag}>'

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Wallboard · {escape(title)}</title>
<link rel="stylesheet" href="static/wallboard.css">
<script src="static/wallboard.js" defer></script>
</head><body data-events="{escape(events)}">
<header><h1>omniroute <span>wallboard</span></h1>
<div class="scope">{escape(title)}</div>
{_filters(filters, choices or state)}
<div class="clock">as of {section("asof", "span")}
<span id="conn" class="conn">static</span></div></header>
<main>
<div class="tiles">{section("summary", cls="part")}{section("staff", cls="part")}</div>
<section class="panel queues"><h2>Queues</h2>{section("queues", cls="scroll")}</section>
<section class="panel agents"><h2>Agents</h2>{section("agents")}</section>
<section class="panel levels"><h2>Service level today, per interval</h2>{section("chart")}</section>
<section class="panel breaches"><h2>SLA breaches, last hour</h2>
{section("breaches", cls="scroll")}</section>
</main></body></html>
"""


def problem_page(problem: str) -> str:
    """The page when the state cannot be read (it reloads itself every 5 s)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="5"><link rel="icon" href="data:,">'
        '<title>Wallboard · unavailable</title><link rel="stylesheet" href="static/wallboard.css">'
        "</head><body><header><h1>omniroute <span>wallboard</span></h1>"
        '<span class="conn down">unavailable</span></header>'
        f'<main><p class="panel">The live state cannot be read: {escape(problem)}</p></main>'
        "</body></html>\n"
    )
