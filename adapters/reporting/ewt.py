"""Estimated wait time (EWT) per queue: what callers hear ("about 2 minutes") and what a
callback offer is based on.

The input is a :class:`QueueLoad` of one tenant x queue x channel key, computed elsewhere
(the DuckDB projection, :mod:`.live`, or the log replay of :mod:`.ewt_accuracy`, which
measures this estimator against a log's real waits); :func:`estimate_wait` is pure.

The estimator. A new arrival waits until the ``ahead`` legs before it have left, so
``wait = ahead / rate``, where ``rate`` (:func:`service_rate`, legs per second) is the
larger of two lower bounds on what the key's agents can do:

- staffing: ``agents / mean_handle_s`` (each agent one contact at a time; agents with
  several chats or messages at once do more, which the next bound sees);
- throughput: ``THROUGHPUT_SCALE x departures / window_s``, what the queue was seen to
  do, scaled up because the window also holds moments when its agents had nothing of
  this key to do (departures include abandons: they move a caller up too).

Edge cases: nobody ahead gives 0.0 (an agent with room takes the contact at once; the
measured mean wait then is 7-8 s, the offer and its accept); no departures and no
staffing known (no agents, or no handle time) gives None; negative counts raise
``ValueError``.
The estimate never decreases with ``ahead`` and never increases with ``agents`` or
``departures``.

How the blend was chosen, by measurement (``python benchmarks/bench_ewt.py`` prints the
table). Observations replayed (:func:`.ewt_accuracy.observe`) from 8 simulated logs: the
demo day (seeds 7 and 11), ``small`` (seeds 1-3) and three 6-hour single voice queues
near and past saturation. Score: the mean over logs of MAE / the baseline's MAE (the
baseline knows each key's mean actual wait over the log in hindsight: see
:mod:`.ewt_accuracy`), lower is better:

==================================  =====  ========  ========  ======
candidate                           score  demo/7    demo/11   small/1
==================================  =====  ========  ========  ======
max(1.25 x seen, staffed) (chosen)  0.768  0.33      0.46      0.89
max(1.25 x seen, 1.5 x staffed)     0.772  0.35      0.42      0.94
max(seen, staffed)                  0.786  0.48      0.63      0.90
max(1.5 x seen, staffed)            0.790  0.34      0.45      0.87
throughput alone                    0.913  0.54      0.85      1.10
average of the two estimates        1.474  3.17      3.26      0.96
staffing alone                      2.159  5.85      5.70      0.93
(ahead + 1) / max(seen, staffed)    2.284  0.51      0.66      4.61
==================================  =====  ========  ========  ======

Staffing alone overshoots agents who serve several contacts at once (email, chats);
throughput alone undershoots a queue whose agents were partly idle; ``ahead + 1``
makes a caller at the head of a queue with room wait a handle time instead of the
few seconds of an offer. The chosen scale ranks first of 36 in a grid of throughput
scales 0.75-2.5 by staffing scales 0.5-3; saturated single queues prefer 1.0 (their
departures are their whole capacity), the demo days 1.25-1.5. Adding half or all of
the caller only when someone is ahead was within noise in an earlier run of this
grid: not taken.

Who is ahead, also measured (MAE on ``small`` seeds 1-3 and the demo day): every
unanswered leg not held by a bot, as :class:`QueueLoad` says, scored 16.0 / 17.0 /
16.0 / 167 s; leaving out new legs that wait for their own agent changed it by under
1 %; leaving out callbacks due later (they keep their first-contact urgency, so go
before a new caller once due) made ``small`` up to 6 % worse.

Where it is weak (the demo day, ``omniroute ewt``): bot handoffs, which a priority
boost puts before the queue (support: 4.9 s MAE against the baseline's 1.5 s); the
back office, whose deadlines reorder email, social posts and tasks (email
over-estimated by 9 minutes on average, tasks under-estimated by 7); and a saturated
single queue, under-estimated (bias -33 s of a 67 s mean wait in the test's scenario).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AGENTS_WINDOW_S",
    "HANDLE_WINDOW_S",
    "THROUGHPUT_SCALE",
    "WINDOW_S",
    "QueueLoad",
    "estimate_wait",
    "service_rate",
]


WINDOW_S = 900.0
"""The default departures window of :class:`QueueLoad`."""
AGENTS_WINDOW_S = 3600.0
"""How far back an agent's last assignment of a key makes them one of its agents."""
HANDLE_WINDOW_S = 3600.0
"""How far back an ended agent segment counts in a key's mean handle time."""


@dataclass(frozen=True)
class QueueLoad:
    """What is known of one tenant x queue x channel now: the estimator's whole input."""

    ahead: int
    """Legs of the key waiting now: live, not yet answered by a human, not held by a bot
    (callbacks due later and new legs waiting for their own agent included)."""
    agents: int
    """Distinct humans assigned a leg of the key in the last hour who are not offline now."""
    mean_handle_s: float | None
    """Mean duration of the key's agent segments (human) that ended in the last hour."""
    departures: int
    """Legs of the key that stopped waiting (a human answered, or abandoned) in the last
    ``window_s``."""
    window_s: float = WINDOW_S


THROUGHPUT_SCALE = 1.25
"""How much more than its recent departures a queue is taken to be able to serve
(measured: see the module docstring)."""


def service_rate(load: QueueLoad) -> float:
    """Legs per second the key's agents are expected to answer now; 0.0 when unknown.

    The larger of two lower bounds: what the queue was seen to do (departures per
    second, times :data:`THROUGHPUT_SCALE`) and what its agents do one contact at a time
    (agents / mean handle time).
    """
    seen = THROUGHPUT_SCALE * load.departures / load.window_s
    handle = load.mean_handle_s
    staffed = load.agents / handle if handle is not None and handle > 0 else 0.0
    return max(seen, staffed)


def estimate_wait(load: QueueLoad) -> float | None:
    """Seconds a new arrival is expected to wait for a human answer; None: nothing known.

    ``ahead / service_rate(load)``: 0.0 when nobody is waiting and the rate is known.
    Raises ``ValueError`` for negative counts or a window that is not positive.
    """
    if load.ahead < 0 or load.agents < 0 or load.departures < 0:
        raise ValueError(f"counts must be >= 0: {load}")
    if not load.window_s > 0:
        raise ValueError(f"window_s must be > 0, got {load.window_s}")
    rate = service_rate(load)
    if rate <= 0:
        return None
    return load.ahead / rate
