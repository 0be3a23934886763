"""The queueing oracles of ``tests/oracles/queueing.py`` against independent computations."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from tests.oracles.queueing import ErlangA, erlang_a, erlang_b, erlang_c, per_hour

# --- independent computations ------------------------------------------------------------


def exact_erlang_c(load: Fraction, agents: int) -> Fraction:
    """Erlang C from the textbook sum, in exact rational arithmetic (no recursion)."""
    terms = [load**k / math.factorial(k) for k in range(agents)]
    top = load**agents / math.factorial(agents) * agents / (agents - load)
    return top / (sum(terms, Fraction(0)) + top)


def exact_erlang_b(load: Fraction, agents: int) -> Fraction:
    terms = [load**k / math.factorial(k) for k in range(agents + 1)]
    return terms[-1] / sum(terms, Fraction(0))


def truncated_generator(model: ErlangA) -> np.ndarray:
    """The birth-death generator of the number in system, truncated at ``N + K``."""
    size = len(model.pi)
    q = np.zeros((size, size))
    for n in range(size):
        if n + 1 < size:
            q[n, n + 1] = model.arrival_rate
        if n > 0:
            q[n, n - 1] = min(n, model.agents) * model.mu + max(n - model.agents, 0) * model.theta
        q[n, n] = -q[n].sum()
    return q


def brute_force_stationary(model: ErlangA) -> np.ndarray:
    """Solve pi Q = 0, sum pi = 1 by least squares on the truncated generator."""
    q = truncated_generator(model)
    lhs = np.vstack([q.T, np.ones(len(q))])
    rhs = np.zeros(len(q) + 1)
    rhs[-1] = 1.0
    pi, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    return np.asarray(pi)


def expm(m: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring of a Taylor series (small matrices)."""
    norm = float(np.abs(m).sum(axis=1).max())
    s = max(0, math.ceil(math.log2(norm)) + 1) if norm > 0 else 0
    a = m / 2**s
    out = np.eye(len(m))
    term = np.eye(len(m))
    for k in range(1, 30):
        term = term @ a / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


def killed_chain_cdf(model: ErlangA, t_s: float) -> tuple[float, float]:
    """P(served by t), P(abandoned by t) of a tagged waiting arrival, via ``expm(Q t)``.

    States: 0..K customers ahead, then 'served', then 'abandoned' (absorbing). Start
    distribution: the PASTA probabilities pi(N + k).
    """
    k_max = model.max_waiting
    size = k_max + 3
    served, gone = k_max + 1, k_max + 2
    q = np.zeros((size, size))
    n_mu, theta = model.agents * model.mu, model.theta
    for i in range(k_max + 1):
        if i == 0:
            q[0, served] = n_mu
        else:
            q[i, i - 1] = n_mu + i * theta
        q[i, gone] = theta
        q[i, i] = -q[i].sum()
    start = np.zeros(size)
    start[: k_max + 1] = model.pi[model.agents :]
    end = start @ expm(q * t_s)
    return float(end[served]), float(end[gone])


def mandelbaum_zeltyn_a(x: float, y: float) -> float:
    """``A(x, y) = x e^y y^-x gamma(x, y) = x int_0^1 u^(x-1) e^(y (1-u)) du``.

    The lower incomplete gamma function by Gauss-Legendre quadrature: an independent
    route to the sum over the waiting states. For ``x < 1`` the integrand is singular at
    0, so substitute ``u = s^(1/x)``: ``A = int_0^1 e^(y (1 - s^(1/x))) ds``.
    """
    nodes, weights = np.polynomial.legendre.leggauss(200)
    u = (nodes + 1.0) / 2.0
    if x < 1.0:
        return float(np.sum(weights / 2.0 * np.exp(y * (1.0 - u ** (1.0 / x)))))
    return float(x * np.sum(weights / 2.0 * u ** (x - 1.0) * np.exp(y * (1.0 - u))))


# --- Erlang B and C ----------------------------------------------------------------------


@pytest.mark.parametrize(("load", "agents"), [(2, 3), (5, 10), (10, 11), (42.5, 50), (90, 100)])
def test_erlang_b_recursion_matches_exact_sum(load: float, agents: int) -> None:
    exact = exact_erlang_b(Fraction(load), agents)
    assert erlang_b(load, agents) == pytest.approx(float(exact), rel=1e-12)


# The classic worked example (e.g. Call Centre Helper's Erlang C walk-through): 200 calls an
# hour (100 per half hour), 180 s handle time, so a = 10 Erlang; 20 s service-level target.
# Columns: agents, P(wait), SL(20 s), ASA seconds (published to 3-4 figures).
CLASSIC = [
    (11, 0.6821, 0.3896, 122.8),
    (12, 0.4494, 0.6402, 40.4),
    (13, 0.2853, 0.7956, 17.1),
    (14, 0.1741, 0.8884, 7.8),
]


@pytest.mark.parametrize(("agents", "p_wait", "sl20", "asa"), CLASSIC)
def test_erlang_c_classic_a10_example(agents: int, p_wait: float, sl20: float, asa: float) -> None:
    model = erlang_c(per_hour(200), 180, agents)
    assert model.load == pytest.approx(10.0)
    assert model.p_wait == pytest.approx(p_wait, abs=6e-5)
    assert model.service_level(20) == pytest.approx(sl20, abs=6e-5)
    assert model.asa_s == pytest.approx(asa, abs=0.06)


@pytest.mark.parametrize(
    ("per_h", "handle_s", "agents"),
    [(200, 180, 11), (110, 300, 10), (60, 240, 5), (1000, 300, 90), (3500, 200, 200)],
)
def test_erlang_c_matches_exact_rational_formula(per_h: int, handle_s: int, agents: int) -> None:
    model = erlang_c(per_hour(per_h), handle_s, agents)
    load = Fraction(per_h * handle_s, 3600)
    c = exact_erlang_c(load, agents)
    assert model.p_wait == pytest.approx(float(c), rel=1e-11)
    drain = (agents - load) / handle_s  # N mu - lam
    assert model.asa_s == pytest.approx(float(c / drain), rel=1e-11)
    for t in (0.0, 5.0, 20.0, 60.0):
        expected = 1.0 - float(c) * math.exp(-float(drain) * t)
        assert model.service_level(t) == pytest.approx(expected, rel=1e-11)


def test_erlang_c_refuses_an_unstable_system() -> None:
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(per_hour(120), 300, 10)  # a = 10 = N
    with pytest.raises(ValueError):
        erlang_a(per_hour(130), 300, math.inf, 10)
    with pytest.raises(ValueError):
        erlang_c(0.0, 300, 10)


# --- Erlang A ------------------------------------------------------------------------------

ERLANG_A_CASES = [  # arrivals / hour, handle s, patience s, agents
    (110, 300, 200, 10),
    (130, 300, 600, 10),  # overloaded (a = 10.8 > N): stable only thanks to abandonment
    (60, 240, 60, 3),
    (1000, 300, 180, 80),
]


@pytest.mark.parametrize(("per_h", "handle_s", "patience_s", "agents"), ERLANG_A_CASES)
def test_erlang_a_stationary_matches_linear_solve(
    per_h: float, handle_s: float, patience_s: float, agents: int
) -> None:
    model = erlang_a(per_hour(per_h), handle_s, patience_s, agents)
    assert model.pi.sum() == pytest.approx(1.0, abs=1e-12)
    assert model.pi[-1] < 1e-14  # truncated where the mass is negligible
    brute = brute_force_stationary(model)
    np.testing.assert_allclose(model.pi, brute, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("per_h", "handle_s", "patience_s", "agents"), ERLANG_A_CASES)
def test_erlang_a_conservation_laws(
    per_h: float, handle_s: float, patience_s: float, agents: int
) -> None:
    model = erlang_a(per_hour(per_h), handle_s, patience_s, agents)
    lam, theta = model.arrival_rate, model.theta
    # abandonment flux: lam P(Ab) = theta E[Q]; and Little: E[Q] = lam E[W]
    assert model.p_abandon == pytest.approx(theta * model.mean_queue / lam, rel=1e-10)
    assert model.mean_wait_s == pytest.approx(model.mean_queue / lam, rel=1e-10)
    # throughput: answered flux = mu E[busy]
    busy = np.minimum(np.arange(len(model.pi)), agents) @ model.pi
    assert lam * model.p_answered == pytest.approx(model.mu * busy, rel=1e-10)
    # mean wait splits into answered and abandoned parts
    split = model.asa_s * model.p_answered + model.mean_wait_abandoned_s * model.p_abandon
    assert split == pytest.approx(model.mean_wait_s, rel=1e-10)


@pytest.mark.parametrize(("per_h", "handle_s", "patience_s", "agents"), ERLANG_A_CASES)
def test_erlang_a_matches_mandelbaum_zeltyn_closed_forms(
    per_h: float, handle_s: float, patience_s: float, agents: int
) -> None:
    model = erlang_a(per_hour(per_h), handle_s, patience_s, agents)
    x = agents * model.mu / model.theta
    y = model.arrival_rate / model.theta
    a_xy = mandelbaum_zeltyn_a(x, y)
    e = erlang_b(model.load, agents)
    assert model.p_wait == pytest.approx(a_xy * e / (1 + (a_xy - 1) * e), rel=1e-9)
    rho = model.arrival_rate / (agents * model.mu)
    p_ab_given_wait = 1 / (rho * a_xy) + 1 - 1 / rho
    assert model.p_abandon / model.p_wait == pytest.approx(p_ab_given_wait, rel=1e-8)


@pytest.mark.parametrize(("per_h", "handle_s", "patience_s", "agents"), ERLANG_A_CASES[:3])
def test_erlang_a_wait_distribution_matches_matrix_exponential(
    per_h: float, handle_s: float, patience_s: float, agents: int
) -> None:
    model = erlang_a(per_hour(per_h), handle_s, patience_s, agents)
    for t in (1.0, 20.0, 90.0, 400.0):
        served, gone = model.outcome_cdf(t)
        ref_served, ref_gone = killed_chain_cdf(model, t)
        assert served == pytest.approx(ref_served, abs=1e-11)
        assert gone == pytest.approx(ref_gone, abs=1e-11)


@pytest.mark.parametrize(("per_h", "handle_s", "patience_s", "agents"), ERLANG_A_CASES)
def test_erlang_a_service_level_is_monotone_with_the_right_limits(
    per_h: float, handle_s: float, patience_s: float, agents: int
) -> None:
    model = erlang_a(per_hour(per_h), handle_s, patience_s, agents)
    ts = [0.0, 1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0]
    sl = [model.service_level(t) for t in ts]
    assert all(b >= a for a, b in itertools.pairwise(sl))
    assert sl[0] == pytest.approx(1 - model.p_wait, abs=1e-15)
    assert sl[-1] <= model.p_answered + 1e-12
    assert model.service_level(50 * handle_s + 50 * patience_s) == pytest.approx(
        model.p_answered, abs=1e-10
    )
    assert model.p_abandon_within(50 * handle_s + 50 * patience_s) == pytest.approx(
        model.p_abandon, abs=1e-10
    )
    ab = [model.p_abandon_within(t) for t in ts]
    assert all(b >= a for a, b in itertools.pairwise(ab))
    assert model.service_level_answered(20) == pytest.approx(
        model.service_level(20) / model.p_answered
    )


def test_erlang_a_mean_answered_wait_is_the_integral_of_the_tail() -> None:
    model = erlang_a(per_hour(60), 240, 60, 3)
    # E[W ; answered] = int_0^inf (P(answered) - P(answered, W <= t)) dt
    # (composite Gauss-Legendre on [0, 1500 s]; the tail beyond is below 1e-12)
    nodes, weights = np.polynomial.legendre.leggauss(16)
    integral = 0.0
    for lo in range(0, 1500, 250):
        ts = lo + (nodes + 1.0) * 125.0
        tail = np.array([model.p_answered - model.service_level(t) for t in ts])
        integral += float(np.sum(weights * 125.0 * tail))
    assert model.p_answered - model.service_level(1500.0) < 1e-12
    assert integral == pytest.approx(model.asa_s * model.p_answered, rel=1e-9)


@pytest.mark.parametrize(("per_h", "handle_s", "agents"), [(110, 300, 10), (200, 180, 11)])
def test_erlang_a_tends_to_erlang_c_as_patience_grows(
    per_h: float, handle_s: float, agents: int
) -> None:
    c = erlang_c(per_hour(per_h), handle_s, agents)
    exact = erlang_a(per_hour(per_h), handle_s, math.inf, agents)  # theta = 0
    assert exact.p_wait == pytest.approx(c.p_wait, rel=1e-12)
    assert exact.p_abandon == 0.0
    assert exact.asa_s == pytest.approx(c.asa_s, rel=1e-10)
    assert exact.service_level(20) == pytest.approx(c.service_level(20), rel=1e-10)
    errors = []
    for patience in (1e5, 1e6, 1e7):
        model = erlang_a(per_hour(per_h), handle_s, patience, agents)
        errors.append(
            abs(model.p_wait - c.p_wait) + abs(model.service_level(20) - c.service_level(20))
        )
        assert model.asa_s == pytest.approx(c.asa_s, rel=200 * handle_s / patience)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


@pytest.mark.parametrize(("load", "agents"), [(8.0, 10), (12.0, 10), (3.0, 2)])
def test_erlang_a_with_patience_equal_to_handle_time_is_m_m_infinity(
    load: float, agents: int
) -> None:
    # theta == mu: the death rate is n mu in every state, so the number in system is
    # Poisson(a) and P(wait) = P(Poisson(a) >= N); abandons = theta E[(L - N)+] / lam.
    handle = 300.0
    model = erlang_a(load / handle, handle, handle, agents)
    poisson = np.array(
        [math.exp(-load + n * math.log(load) - math.lgamma(n + 1)) for n in range(400)]
    )
    np.testing.assert_allclose(model.pi, poisson[: len(model.pi)], rtol=0, atol=1e-13)
    assert model.p_wait == pytest.approx(float(poisson[agents:].sum()), rel=1e-10)
    excess = float(np.sum(np.maximum(np.arange(400) - agents, 0) * poisson))
    assert model.p_abandon == pytest.approx(excess / load, rel=1e-10)


def test_erlang_a_more_agents_means_less_waiting() -> None:
    models = [erlang_a(per_hour(110), 300, 200, n) for n in range(6, 15)]
    p_wait = [m.p_wait for m in models]
    p_ab = [m.p_abandon for m in models]
    sl = [m.service_level(20) for m in models]
    assert all(b < a for a, b in itertools.pairwise(p_wait))
    assert all(b < a for a, b in itertools.pairwise(p_ab))
    assert all(b > a for a, b in itertools.pairwise(sl))


def test_erlang_a_large_centre_is_computable() -> None:
    model = erlang_a(per_hour(30_000), 300, 120, 2400)  # a = 2500 > N
    assert 0.0 < model.p_abandon < 1.0
    assert np.isfinite(model.pi).all()
    assert model.p_abandon == pytest.approx(model.theta * model.mean_queue / model.arrival_rate)
