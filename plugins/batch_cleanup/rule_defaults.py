"""The alert rules' names and defaults, and the check of a run's choice of rule: what the DAG's params
need at parse time. `policy.PolicyConfig` and `rules.RateRule` take their defaults from here and
`policy.rate_rule` its check, so that parsing the DAG builds none of those modules' dataclasses (4 ms
of a 35 ms parse). Pure.
"""

from __future__ import annotations

from typing import Any

from batch_cleanup.names import RUN_EVERY_MINUTES

COUNT = "count"
BURN_RATE = "burn_rate"
RULES = (COUNT, BURN_RATE)

# The count rule (`policy.PolicyConfig`): cleanups in the window.
WARNING_THRESHOLD = 3
# Every scheduled run of the 60-minute window (4 runs) had cleanups: reachable on the schedule.
CRITICAL_THRESHOLD = 4
WINDOW_MINUTES = 60
COOLDOWN_MINUTES = 60

# The rate rule (`rules.RateRule`). Chosen on the labelled synthetic history (bench/synthetic.py),
# 4 variants × 10 draws: every draw meets issue 20's goal (docs/alert-rules.md).
OBJECTIVE_PCT = 1.0
CRITICAL_FACTOR = 6.0  # a 15 % outage over its first two runs; above most slowdowns
CRITICAL_MINUTES = 30  # two runs: a quiet hour's outage adds up to `MIN_BATCHES`
WARNING_FACTOR = 2.5  # a slowdown of 2.5 % and more; a 0.5 % baseline's variance stays below
WARNING_MINUTES = 15  # the last run alone, when it checked `WARNING_BATCHES`
WARNING_BATCHES = 150
WARNING_MAX_MINUTES = 240
MIN_BATCHES = 3
HOLD_FACTOR = 1.0
HOLD_MINUTES = 60


def scheduled_runs(window_minutes: int) -> int:
    """Scheduled runs in a window `(T − window, T]`: each records at most one cleanup."""
    return -(-window_minutes // RUN_EVERY_MINUTES)


def check_rule(rule: Any, objective: Any) -> None:
    """A ValueError that names the param unless a run can work with alert rule `rule` and rate
    objective `objective` (which is checked under either rule: every run has it)."""
    if rule not in RULES:
        raise ValueError(f"alert_rule must be one of {', '.join(RULES)}, got {rule!r}")
    if isinstance(objective, bool) or not isinstance(objective, int | float) or not 0 < objective <= 100:
        raise ValueError(f"rate_objective_pct must be a number above 0 and at most 100, got {objective!r}")
    # A rate above 100 % cannot happen: an objective this high would never page CRITICAL.
    if rule == BURN_RATE and CRITICAL_FACTOR * objective > 100:
        raise ValueError(
            f"rate_objective_pct {objective:g} cannot work with alert_rule {BURN_RATE}: CRITICAL needs "
            f"{CRITICAL_FACTOR:g}× the objective, {CRITICAL_FACTOR * objective:g} % of the batches "
            f"checked, which can never happen (at most {100 / CRITICAL_FACTOR:.3g} works)"
        )
