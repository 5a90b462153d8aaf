"""The DAG's run parameters, as the trigger form shows and checks them. The alert thresholds' defaults
are `PolicyConfig`'s, so the DAG, the history page and the policy cannot disagree; the alert rule's
and the rate objective's are the `[batch_cleanup]` settings'."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

from batch_cleanup.compat import AirflowException
from batch_cleanup.config import ALERT_RULE, RATE_OBJECTIVE_PCT, SECTION
from batch_cleanup.names import RUN_EVERY_MINUTES
from batch_cleanup.policy import PolicyConfig, rate_rule
from batch_cleanup.rules import BURN_RATE, COUNT, RULES, RateRule

STALL_THRESHOLD_MINUTES = 10
MIN_COMPLETION_PCT = 90
DEFAULTS = PolicyConfig()
# The arithmetic behind the defaults: a run records at most one cleanup, so the window's count
# reaches at most its number of scheduled runs unless runs are triggered or cleared by hand.
SCHEDULE_ARITHMETIC = (
    f"Each run records at most one cleanup, and the {DEFAULTS.window_minutes}-minute window holds "
    f"{DEFAULTS.scheduled_runs_in_window} scheduled runs (every {RUN_EVERY_MINUTES} minutes)"
)


RATE = RateRule()
RULE_NAMES = {
    COUNT: "count: cleanups in the window against the thresholds",
    BURN_RATE: "burn_rate: the share of batches auto-completed against the objective",
}


def setting_defaults() -> tuple[str, float]:
    """The `[batch_cleanup]` alert rule and rate objective, checked as a run checks its params: a
    default that no scheduled run could work with fails the DAG's import, naming the setting."""
    try:
        rate_rule({"alert_rule": ALERT_RULE, "rate_objective_pct": RATE_OBJECTIVE_PCT})
    except ValueError as err:
        raise ValueError(f"[{SECTION}] settings: {err}") from None
    return ALERT_RULE, RATE_OBJECTIVE_PCT


def _param(default: Any, title: str, description: str | None = None, **schema: Any) -> Param:
    """A whole number ≥ 1 unless `schema` says otherwise."""
    return Param(default, description, title=title, **{"type": "integer", "minimum": 1, **schema})


def dag_params() -> dict[str, Param]:
    alert_rule, objective_pct = setting_defaults()
    return {
        "stall_threshold_minutes": _param(
            STALL_THRESHOLD_MINUTES,
            "Stall threshold (minutes)",
            "A batch counts as stalled after this many minutes without progress.",
            maximum=1440,
        ),
        "min_completion_pct": _param(
            MIN_COMPLETION_PCT,
            "Minimum completion (%)",
            "Only batches at least this complete are auto-completed.",
            type="number",
            minimum=0,
            maximum=100,
        ),
        "warning_threshold": _param(
            DEFAULTS.warning_threshold,
            "WARNING at (cleanups in the window)",
            f"{SCHEDULE_ARITHMETIC}: {DEFAULTS.warning_threshold} means cleanups in "
            f"{DEFAULTS.warning_threshold} of them.",
        ),
        "critical_threshold": _param(
            DEFAULTS.critical_threshold,
            "CRITICAL at (cleanups in the window)",
            f"Must be greater than the WARNING threshold. {SCHEDULE_ARITHMETIC}: "
            f"{DEFAULTS.critical_threshold} means cleanups in every one of them; more is reached only "
            "with manual or cleared runs.",
        ),
        "window_minutes": _param(DEFAULTS.window_minutes, "Window (minutes)", maximum=1440),
        "cooldown_minutes": _param(
            DEFAULTS.cooldown_minutes,
            "Cooldown (minutes)",
            "At most one reminder per cooldown while an incident is unchanged.",
        ),
        "alert_rule": Param(
            alert_rule,
            "count: the cleanups in the window against the WARNING and CRITICAL thresholds above. "
            "burn_rate: the share of checked batches auto-completed, against the objective below "
            "(it tells a busy hour's baseline from a systemic problem); the count still shows in "
            "the messages. How to choose: docs/alert-rules.md.",
            type="string",
            enum=list(RULES),
            values_display=RULE_NAMES,
            title="Alert rule",
        ),
        "rate_objective_pct": Param(
            objective_pct,
            f"burn_rate only: the share of checked batches that may be auto-completed in normal "
            f"operation. WARNING at {RATE.warning_factor:g}× it, CRITICAL at {RATE.critical_factor:g}× "
            f"over {RATE.critical_minutes} minutes, so at most {100 / RATE.critical_factor:.3g} works "
            "with burn_rate.",
            type="number",
            exclusiveMinimum=0,
            maximum=100,
            title="Rate objective (% of batches checked)",
        ),
        "notify": _notify(),
        "force_alert": Param(
            False,
            "Posts a marked TEST message to check the Slack wiring; no incident state changes.",
            type="boolean",
            title="Send a TEST message",
        ),
    }


def digest_params() -> dict[str, Param]:
    """The weekly digest's params: `notify`, and `test_digest`, its TEST message."""
    return {
        "notify": _notify(),
        "test_digest": Param(
            False,
            "Posts the digest marked TEST (figures of the seven days before the run), to check its wiring.",
            type="boolean",
            title="Send a TEST digest",
        ),
    }


def _notify() -> Param:
    return Param(
        True,
        "Off: the message is written to the task log only; nothing is sent or changed.",
        type="boolean",
        title="Post to Slack",
    )


class InvalidParam(ValueError):
    """A value a triggered run would refuse; `field` names the param (None when no one param is at fault)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(PolicyConfig))


def policy_config(values: Mapping[str, Any]) -> PolicyConfig:
    """The alert thresholds in `values`, checked as a triggered run checks them; the DAG's default for
    one that is missing.

    Each value goes through its Param's schema (what the trigger form and Airflow's API check), then
    `PolicyConfig`'s rules (critical above warning, which `check_stalled` checks). A refused value
    raises `InvalidParam` with Airflow's own words, first line only (the schema dump after it is noise).
    """
    params = dag_params()
    resolved = {}
    for name in POLICY_FIELDS:
        if name not in values:
            resolved[name] = params[name].value
            continue
        try:
            resolved[name] = params[name].resolve(values[name])
        except AirflowException as err:  # ParamValidationError, which moved to the Task SDK after 3.1
            reason = str(err).split("\n", 1)[0]
            raise InvalidParam(name, f"Invalid input for param {name}: {reason}") from None
    try:
        return PolicyConfig(**resolved)
    except ValueError as err:  # its messages begin with the field at fault
        named = str(err).split(" ", 1)[0]
        raise InvalidParam(named if named in POLICY_FIELDS else None, str(err)) from None
