"""Queueing formulas used as test oracles: Erlang B, Erlang C (M/M/N) and Erlang A (M/M/N+M).

Implemented here (numpy and ``math`` only) so the simulator can be checked against theory
without a scipy dependency. Units: rates per second, times in seconds.

Notation: ``lam`` arrival rate, ``mu = 1 / mean_handle_s`` service rate of one agent,
``theta = 1 / mean_patience_s`` abandonment rate of one waiting customer, ``N`` agents,
``a = lam / mu`` offered load in Erlangs.

Erlang C (M/M/N, FCFS, infinite patience; needs ``a < N``)::

    B(0) = 1,  B(n) = a B(n-1) / (n + a B(n-1))           Erlang B, the stable recursion
    C    = N B(N) / (N - a (1 - B(N)))                     P(W > 0) (PASTA)
    P(W > t) = C exp(-(N mu - lam) t)                      so SL(t) = P(W <= t) = 1 - P(W > t)
    ASA  = E[W] = C / (N mu - lam)                          over all calls, zero waits included

References: A. K. Erlang (1917); L. Kleinrock, *Queueing Systems* vol. 1 (1975), §3.5;
G. Koole, *Call Center Optimization* (2013), ch. 5.

Erlang A (Palm 1943; M/M/N+M: exponential patience, a customer who is still queued when
their patience runs out abandons; stable for every ``a`` when ``theta > 0``). The number in
system is a birth-death process with birth rate ``lam`` and death rate ``n mu`` in state
``n <= N`` and ``N mu + k theta`` in state ``N + k`` (``k`` waiting)::

    pi(n)     ~ a^n / n!                                    n = 0..N
    pi(N + k) = pi(N) prod_{j=1..k} lam / (N mu + j theta)  k >= 1

computed in log space and truncated at the first ``K`` past which the (geometrically
decreasing) tail mass is below ``tol`` of the total. By PASTA an arrival sees ``pi``.
An arrival that finds ``k`` customers waiting (state ``N + k``) joins behind them; while
``i`` customers are ahead of it (``i = k .. 0``) the next move of the line happens at rate
``r_i = N mu + i theta`` (a service completion takes the head of the line, or one of the
``i`` ahead abandons); with ``i = 0`` the next completion serves it. Independently it
abandons at rate ``theta``. So from phase ``i`` it leaves at total rate ``r_{i+1}``,
moving on with probability ``r_i / r_{i+1}``. Telescoping products give::

    P(answered | k)                 = N mu / r_{k+1}
    P(abandon  | k)                 = (k + 1) theta / r_{k+1}
    E[W | k]                        = (k + 1) / r_{k+1}       (W = time spent queued)
    E[W ; answered | k]             = (N mu / r_{k+1}) sum_{j=1..k+1} 1 / r_j

and, unconditionally, ``P(Ab) = theta E[W]`` (= ``theta E[Q] / lam``: abandonment flux).
The distribution of ``W`` (``P(answered and W <= t)``, ``P(abandoned and W <= t)``) is the
absorption-time distribution of that killed pure-death chain started from the PASTA
mixture ``pi(N + k)``; it is computed by uniformization (Jensen 1953; Grassmann 1977):
with ``L = r_{K+1}`` the largest exit rate, the discrete chain that stays with probability
``1 - r_{i+1} / L`` is stepped ``n`` times and the absorbed masses are mixed with Poisson(
``L t``) weights; every term is non-negative, so the sum is numerically stable (unlike the
alternating closed form of the hypoexponential distribution).

The closed forms of Mandelbaum & Zeltyn agree with this: with ``x = N mu / theta``,
``y = lam / theta``, ``A(x, y) = x e^y y^{-x} gamma(x, y) = sum_k prod_{j=1..k} lam /
(N mu + j theta)`` and ``E = B(N)``::

    P(W > 0)      = A E / (1 + (A - 1) E)
    P(Ab | W > 0) = 1 / (rho A) + 1 - 1 / rho,   rho = lam / (N mu)

References: C. Palm (1943, 1957); O. Garnett, A. Mandelbaum, M. Reiman, "Designing a call
center with impatient customers", *Manufacturing & Service Operations Management* 4(3),
208-227 (2002); A. Mandelbaum, S. Zeltyn, "Service engineering in action: the Palm/Erlang-A
queue, with applications to call centers" (2007) and "The impact of customers' patience on
delay and abandonment" (*Operations Research* 52(1), 2004).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["ErlangA", "ErlangC", "erlang_a", "erlang_b", "erlang_c", "per_hour"]

FloatArray = npt.NDArray[np.float64]


def per_hour(rate: float) -> float:
    """An hourly rate as a rate per second (the unit every formula here takes)."""
    return rate / 3600.0


def erlang_b(load: float, agents: int) -> float:
    """Erlang B blocking probability ``B(N, a)`` by the stable recursion (no factorials)."""
    if load < 0 or agents < 0:
        raise ValueError("load and agents must be non-negative")
    b = 1.0
    for n in range(1, agents + 1):
        b = load * b / (n + load * b)
    return b


def _check(arrival_rate: float, mean_handle_s: float, agents: int) -> None:
    if not arrival_rate > 0:
        raise ValueError(f"arrival_rate must be > 0, got {arrival_rate!r}")
    if not mean_handle_s > 0:
        raise ValueError(f"mean_handle_s must be > 0, got {mean_handle_s!r}")
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents!r}")


@dataclass(frozen=True)
class ErlangC:
    """M/M/N FCFS with infinite patience: the Erlang C formulas (module docstring)."""

    arrival_rate: float
    """Arrivals per second."""
    mean_handle_s: float
    agents: int
    p_wait: float
    """P(W > 0): the probability an arrival finds every agent busy (Erlang C)."""

    @property
    def load(self) -> float:
        """Offered load ``a = lam / mu`` in Erlangs."""
        return self.arrival_rate * self.mean_handle_s

    @property
    def occupancy(self) -> float:
        """Agent occupancy ``a / N``."""
        return self.load / self.agents

    @property
    def drain_rate(self) -> float:
        """``N mu - lam``: the rate of the exponential tail of the wait."""
        return self.agents / self.mean_handle_s - self.arrival_rate

    @property
    def asa_s(self) -> float:
        """Average speed of answer: mean wait over all calls, ``C / (N mu - lam)``."""
        return self.p_wait / self.drain_rate

    def p_wait_gt(self, t_s: float) -> float:
        """``P(W > t) = C exp(-(N mu - lam) t)`` for ``t >= 0``."""
        if t_s < 0:
            return 1.0
        return self.p_wait * math.exp(-self.drain_rate * t_s)

    def service_level(self, t_s: float) -> float:
        """``P(W <= t)`` over all calls (every call is answered in M/M/N)."""
        return 1.0 - self.p_wait_gt(t_s)


def erlang_c(arrival_rate: float, mean_handle_s: float, agents: int) -> ErlangC:
    """Erlang C for ``agents`` servers; raises ``ValueError`` unless ``load < agents``."""
    _check(arrival_rate, mean_handle_s, agents)
    a = arrival_rate * mean_handle_s
    if a >= agents:
        raise ValueError(f"unstable: load {a:.4g} Erlang >= {agents} agents")
    b = erlang_b(a, agents)
    c = agents * b / (agents - a * (1.0 - b))
    return ErlangC(arrival_rate, mean_handle_s, agents, c)


@dataclass(frozen=True)
class ErlangA:
    """M/M/N+M (Palm / Erlang A): see the module docstring for the formulas."""

    arrival_rate: float
    mean_handle_s: float
    mean_patience_s: float
    """``math.inf`` gives ``theta = 0``: Erlang C (then ``load < agents`` is required)."""
    agents: int
    pi: FloatArray = field(repr=False)
    """Stationary distribution of the number in system, states ``0 .. N + K``."""

    @property
    def mu(self) -> float:
        return 1.0 / self.mean_handle_s

    @property
    def theta(self) -> float:
        return 0.0 if math.isinf(self.mean_patience_s) else 1.0 / self.mean_patience_s

    @property
    def load(self) -> float:
        return self.arrival_rate * self.mean_handle_s

    @property
    def max_waiting(self) -> int:
        """``K``: the truncation of the number waiting."""
        return len(self.pi) - 1 - self.agents

    def _waiting(self) -> tuple[FloatArray, FloatArray]:
        """(``pi(N + k)``, ``r_{k+1} = N mu + (k + 1) theta``) for ``k = 0 .. K``."""
        k = np.arange(self.max_waiting + 1, dtype=np.float64)
        return self.pi[self.agents :], self.agents * self.mu + (k + 1.0) * self.theta

    @property
    def p_wait(self) -> float:
        """P(an arrival finds every agent busy) = P(W > 0)."""
        return float(self.pi[self.agents :].sum())

    @property
    def p_abandon(self) -> float:
        """P(abandon) over all arrivals: ``sum_k pi(N+k) (k+1) theta / r_{k+1}``."""
        p, r = self._waiting()
        k1 = np.arange(1, len(p) + 1, dtype=np.float64)
        return float(np.sum(p * k1 * self.theta / r))

    @property
    def p_answered(self) -> float:
        return 1.0 - self.p_abandon

    @property
    def mean_queue(self) -> float:
        """``E[Q]``: mean number waiting (time average)."""
        p, _ = self._waiting()
        return float(np.sum(p * np.arange(len(p), dtype=np.float64)))

    @property
    def mean_wait_s(self) -> float:
        """``E[W]`` over all arrivals, abandoned ones counted until they abandon."""
        p, r = self._waiting()
        k1 = np.arange(1, len(p) + 1, dtype=np.float64)
        return float(np.sum(p * k1 / r))

    @property
    def asa_s(self) -> float:
        """Average speed of answer: mean wait of answered calls (zero waits included)."""
        p, r = self._waiting()
        h_mean = np.cumsum(1.0 / r)  # E[sum_{j=1..k+1} Exp(r_j)]
        return float(np.sum(p * self.agents * self.mu / r * h_mean)) / self.p_answered

    @property
    def mean_wait_abandoned_s(self) -> float:
        """Mean time to abandon of the customers who abandon."""
        answered = self.asa_s * self.p_answered
        return (self.mean_wait_s - answered) / self.p_abandon

    def outcome_cdf(self, t_s: float, tol: float = 1e-14) -> tuple[float, float]:
        """(P(answered after queueing and W <= t), P(abandoned and W <= t)) over all arrivals.

        Uniformization of the tagged customer's killed chain (module docstring). Calls
        answered at once (``W = 0``) are not included in the first figure.
        """
        if t_s <= 0:
            return 0.0, 0.0
        p, r = self._waiting()
        lam_u = float(r[-1])  # the largest exit rate, phase K
        n_mu = self.agents * self.mu
        # One step from phase i (i ahead): answered (i = 0) w.p. N mu / L, abandon w.p.
        # theta / L, move to i - 1 (i >= 1) w.p. (N mu + i theta) / L, else stay.
        r_move = n_mu + np.arange(len(p), dtype=np.float64) * self.theta
        stay = 1.0 - r / lam_u
        move = r_move / lam_u
        kill = self.theta / lam_u
        v = p.astype(np.float64, copy=True)
        lt = lam_u * t_s
        served = abandoned = 0.0
        total_served = total_abandoned = 0.0
        log_lt = math.log(lt)
        n = 0
        while True:
            w = math.exp(-lt + n * log_lt - math.lgamma(n + 1))  # Poisson(L t) weight of n
            total_served += w * served
            total_abandoned += w * abandoned
            # past the mode the weights fall at least geometrically (ratio lt / (n + 1)):
            # the neglected Poisson tail is <= w q / (1 - q), and it multiplies masses <= 1
            q = lt / (n + 1)
            if q < 1.0 and w * q / (1.0 - q) < tol:
                break
            served += float(v[0] * move[0])
            abandoned += float(v.sum() * kill)
            nxt = v * stay
            nxt[:-1] += v[1:] * move[1:]
            v = nxt
            n += 1
        return total_served, total_abandoned

    def service_level(self, t_s: float) -> float:
        """P(answered and W <= t) over ALL arrivals: abandons count as not met."""
        if t_s < 0:
            return 0.0
        return (1.0 - self.p_wait) + self.outcome_cdf(t_s)[0]

    def service_level_answered(self, t_s: float) -> float:
        """P(W <= t | answered)."""
        return self.service_level(t_s) / self.p_answered

    def p_abandon_within(self, t_s: float) -> float:
        """P(abandoned and W <= t) over all arrivals."""
        return self.outcome_cdf(t_s)[1]


def erlang_a(
    arrival_rate: float,
    mean_handle_s: float,
    mean_patience_s: float,
    agents: int,
    tol: float = 1e-15,
    max_waiting: int = 5_000_000,
) -> ErlangA:
    """Erlang A (M/M/N+M) with exponential patience of mean ``mean_patience_s``.

    The stationary distribution is built in log space (``log a^n / n!`` and the running
    sum of ``log lam / (N mu + j theta)``), so large ``N`` neither overflows nor
    underflows the normalisation; ``tol`` bounds the truncated tail mass.
    """
    _check(arrival_rate, mean_handle_s, agents)
    if not mean_patience_s > 0:
        raise ValueError(f"mean_patience_s must be > 0, got {mean_patience_s!r}")
    mu = 1.0 / mean_handle_s
    theta = 0.0 if math.isinf(mean_patience_s) else 1.0 / mean_patience_s
    a = arrival_rate / mu
    if theta == 0.0 and a >= agents:
        raise ValueError(f"unstable without abandonment: load {a:.4g} >= {agents} agents")
    n = np.arange(agents + 1, dtype=np.float64)
    log_idle = n * math.log(a) - np.array([math.lgamma(x + 1.0) for x in n])
    # waiting states: log pi(N+k) - log pi(N) = sum_{j<=k} log(lam / (N mu + j theta))
    log_ratios: list[float] = []
    log_term = 0.0
    log_total = float(np.logaddexp.reduce(log_idle - log_idle[-1]))  # relative to pi(N)
    k = 0
    while True:
        k += 1
        q = arrival_rate / (agents * mu + k * theta)
        # once q < 1 the ratios keep decreasing: the tail after k is <= term q / (1 - q)
        if q < 1.0 and log_term + math.log(q / (1.0 - q)) < math.log(tol) + log_total:
            break
        if k > max_waiting:
            raise ValueError("the waiting-state truncation did not converge")
        log_term += math.log(q)
        log_ratios.append(log_term)
        log_total = float(np.logaddexp(log_total, log_term))
    log_pi = np.concatenate([log_idle, log_idle[-1] + np.asarray(log_ratios, dtype=np.float64)])
    pi = np.exp(log_pi - log_pi.max())
    pi /= pi.sum()
    return ErlangA(arrival_rate, mean_handle_s, mean_patience_s, agents, pi)
