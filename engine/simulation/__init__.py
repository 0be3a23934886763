"""A seeded discrete-event simulator of a contact centre, driving the real engine.

The simulator is a client of the engine, like a deployment: it plays the customers,
the agents' desktops and the bots, sends inputs to :class:`~omniroute.engine.Engine`,
appends each input with the decisions it caused to an ``EventLog``, and reacts to
those decisions. Nothing is decided here that the engine decides in production.

What it plays, from a :class:`Scenario` (TOML; ``engine/simulation/scenarios/`` ships
examples):

- arrivals per traffic stream (channel, queue, skills): a Poisson process whose rate
  follows an intraday curve (piecewise constant per hour of the day), plus an optional
  backlog waiting at the start;
- handling times per media class (exponential, lognormal, uniform or fixed), customer
  patience (abandons from the queue and from offers; some voice callers ask for a
  callback instead), customers who open a second leg on another channel (the email
  with the document during the call, WhatsApp during a chat), legs that end on their
  own while the conversation goes on, cold and warm
  transfers, bot containment and hand-offs, customers writing in asynchronous
  conversations, outbound follow-up tasks;
- agents in groups with skills (fixed or drawn from a pool), shifts, breaks, offer
  declines and offers left to time out, wrap-up; their replies in asynchronous
  conversations (``MessageReceived`` out), written one at a time and paused by calls.

Reproducibility: everything about an arrival (time, customer, handling time, patience,
what it will do) is drawn from a random stream of its own traffic stream, before and
independently of routing, so two policies see exactly the same arrivals
(``--compare``). The agents' reactions come from another stream. The same scenario,
seed and policy give the same log, byte for byte; there is no wall clock here.

Modules: ``scenario`` (the schema), ``loading`` (TOML, built-ins, the scenario's
policy), ``arrivals`` (what arrives), ``floor`` (the agenda, the engine and the log
the parts share), ``customers``, ``agents``, ``desks`` (the agents' written work),
``bots``, ``shifts``, ``loop``
(:func:`simulate`), and ``legs`` (:func:`simultaneous_legs`: the customers who had
several live legs, read back from a log).

>>> from omniroute.engine.simulation import load_scenario, simulate
"""

from .floor import SimulationRun
from .legs import LiveLegs, simultaneous_legs
from .loading import builtin_scenarios, load_scenario, parse_scenario, scenario_policy
from .loop import simulate
from .scenario import (
    AgentGroup,
    BotPlay,
    Dist,
    FollowUp,
    Scenario,
    ScenarioError,
    SkillPool,
    Switch,
    Traffic,
)

__all__ = [
    "AgentGroup",
    "BotPlay",
    "Dist",
    "FollowUp",
    "LiveLegs",
    "Scenario",
    "ScenarioError",
    "SimulationRun",
    "SkillPool",
    "Switch",
    "Traffic",
    "builtin_scenarios",
    "load_scenario",
    "parse_scenario",
    "scenario_policy",
    "simulate",
    "simultaneous_legs",
]
