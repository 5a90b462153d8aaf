"""The DAG's run parameters, as the trigger form shows and checks them. The alert thresholds' defaults
are `rule_defaults`', as are `PolicyConfig`'s, so the DAG, the history page and the policy cannot
disagree; the alert rule's and the rate objective's are the `[batch_cleanup]` settings'. Parsing the
DAG imports this module: the policy is imported only when `policy_config` runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param

from batch_cleanup import rule_defaults as default
from batch_cleanup.compat import AirflowException
from batch_cleanup.config import ALERT_RULE, RATE_OBJECTIVE_PCT, SECTION
from batch_cleanup.names import RUN_EVERY_MINUTES
from batch_cleanup.rule_defaults import BURN_RATE, COUNT, RULES, check_rule, scheduled_runs

if TYPE_CHECKING:
    from batch_cleanup.policy import PolicyConfig

STALL_THRESHOLD_MINUTES = 10
MIN_COMPLETION_PCT = 90
# The arithmetic behind the defaults: a run records at most one cleanup, so the window's count
# reaches at most its number of scheduled runs unless runs are triggered or cleared by hand.
SCHEDULE_ARITHMETIC = (
    f"Each run records at most one cleanup, and the {default.WINDOW_MINUTES}-minute window holds "
    f"{scheduled_runs(default.WINDOW_MINUTES)} scheduled runs (every {RUN_EVERY_MINUTES} minutes)"
)
# `PolicyConfig`'s fields (tests/unit/test_params.py checks), each a param of the same name.
POLICY_FIELDS = ("warning_threshold", "critical_threshold", "window_minutes", "cooldown_minutes")

RULE_NAMES = {
    COUNT: "count: cleanups in the window against the thresholds",
    BURN_RATE: "burn_rate: the share of batches auto-completed against the objective",
}


def setting_defaults() -> tuple[str, float]:
    """The `[batch_cleanup]` alert rule and rate objective, checked as a run checks its params: a
    default that no scheduled run could work with fails the DAG's import, naming the setting."""
    try:
        check_rule(ALERT_RULE, RATE_OBJECTIVE_PCT)
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
            default.WARNING_THRESHOLD,
            "WARNING at (cleanups in the window)",
            f"{SCHEDULE_ARITHMETIC}: {default.WARNING_THRESHOLD} means cleanups in "
            f"{default.WARNING_THRESHOLD} of them.",
        ),
        "critical_threshold": _param(
            default.CRITICAL_THRESHOLD,
            "CRITICAL at (cleanups in the window)",
            f"Must be greater than the WARNING threshold. {SCHEDULE_ARITHMETIC}: "
            f"{default.CRITICAL_THRESHOLD} means cleanups in every one of them; more is reached only "
            "with manual or cleared runs.",
        ),
        "window_minutes": _param(default.WINDOW_MINUTES, "Window (minutes)", maximum=1440),
        "cooldown_minutes": _param(
            default.COOLDOWN_MINUTES,
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
            f"operation. WARNING at {default.WARNING_FACTOR:g}× it, CRITICAL at {default.CRITICAL_FACTOR:g}× "
            f"over {default.CRITICAL_MINUTES} minutes, so at most {100 / default.CRITICAL_FACTOR:.3g} works "
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


def policy_config(values: Mapping[str, Any]) -> PolicyConfig:
    """The alert thresholds in `values`, checked as a triggered run checks them; the DAG's default for
    one that is missing.

    Each value goes through its Param's schema (what the trigger form and Airflow's API check), then
    `PolicyConfig`'s rules (critical above warning, which `check_stalled` checks). A refused value
    raises `InvalidParam` with Airflow's own words, first line only (the schema dump after it is noise).
    """
    from batch_cleanup.policy import PolicyConfig

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
