"""The trigger form's params, and the alert thresholds checked as a triggered run checks them."""

from __future__ import annotations

import dataclasses

import pytest

from batch_cleanup import config, params
from batch_cleanup.params import POLICY_FIELDS, InvalidParam, dag_params, policy_config
from batch_cleanup.policy import PolicyConfig
from batch_cleanup.rules import BURN_RATE, COUNT, RateRule

DEFAULTS = PolicyConfig()


def test_the_thresholds_defaults_are_the_policys():
    params = dag_params()
    assert tuple(field.name for field in dataclasses.fields(PolicyConfig)) == POLICY_FIELDS
    assert {name: params[name].value for name in POLICY_FIELDS} == dataclasses.asdict(DEFAULTS)


def test_the_rate_rules_figures_in_the_form_are_its_defaults():
    """The objective's description states the rule's factors; they come from `RateRule`'s defaults."""
    rule = RateRule()
    description = dag_params()["rate_objective_pct"].description
    assert (rule.warning_factor, rule.critical_factor, rule.critical_minutes) == (2.5, 6.0, 30)
    assert "WARNING at 2.5× it, CRITICAL at 6× over 30 minutes" in description


def test_critical_by_default_is_every_scheduled_run_of_the_window():
    """Four 15-minute runs fit the 60-minute window; a run records at most one cleanup, so a default
    CRITICAL above four would never fire on the schedule alone."""
    params = dag_params()

    assert (DEFAULTS.warning_threshold, DEFAULTS.critical_threshold) == (3, 4)
    assert DEFAULTS.unreachable() == ()
    for name in ("warning_threshold", "critical_threshold"):
        assert "the 60-minute window holds 4 scheduled runs" in params[name].description
    assert "4 means cleanups in every one of them" in params["critical_threshold"].description


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, DEFAULTS),
        ({"warning_threshold": 2}, PolicyConfig(warning_threshold=2)),
        (
            {"critical_threshold": 9, "cooldown_minutes": 15},
            PolicyConfig(critical_threshold=9, cooldown_minutes=15),
        ),
        ({"window_minutes": 1440, "stall_threshold_minutes": 99}, PolicyConfig(window_minutes=1440)),
    ],
    ids=["nothing-asked", "one", "two", "others-ignored"],
)
def test_a_missing_threshold_is_the_dags_default(values, expected):
    assert policy_config(values) == expected


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("warning_threshold", 0, "0 is less than the minimum of 1"),
        ("window_minutes", 1441, "1441 is greater than the maximum of 1440"),
        ("cooldown_minutes", "1h", "'1h' is not of type 'integer'"),
        ("critical_threshold", 5.5, "5.5 is not of type 'integer'"),
        ("warning_threshold", False, "False is not of type 'integer'"),
        ("warning_threshold", None, "None is not of type 'integer'"),
    ],
    ids=["below-minimum", "above-maximum", "text", "fraction", "boolean", "null"],
)
def test_a_value_the_schema_refuses_is_named_in_airflows_words(field, value, message):
    with pytest.raises(InvalidParam) as refused:
        policy_config({field: value})
    assert refused.value.field == field
    assert str(refused.value) == f"Invalid input for param {field}: {message}"  # its first line only


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"warning_threshold": 4}, "critical_threshold", r"critical_threshold \(4\) must be greater than"),
        (
            {"warning_threshold": 4.0},
            "warning_threshold",
            "warning_threshold must be an integer ≥ 1, got 4.0",
        ),
    ],
    ids=["critical-not-above-warning", "a-whole-float"],
)
def test_what_the_schema_lets_through_policy_config_still_checks(values, field, message):
    with pytest.raises(InvalidParam, match=message) as refused:
        policy_config(values)
    assert refused.value.field == field


def test_the_rule_and_the_objective_default_to_the_settings_and_those_to_count_and_1_percent():
    form = dag_params()
    assert (form["alert_rule"].value, form["rate_objective_pct"].value) == (COUNT, 1.0)
    assert config.ALERT_RULE == COUNT
    assert RateRule().objective_pct == config.RATE_OBJECTIVE_PCT
    assert form["alert_rule"].schema["enum"] == [COUNT, BURN_RATE]
    objective = form["rate_objective_pct"].schema
    assert (objective["type"], objective["exclusiveMinimum"], objective["maximum"]) == ("number", 0, 100)
    for name in ("alert_rule", "rate_objective_pct"):
        assert form[name].schema["title"] and form[name].description
    assert "at most 16.7 works with burn_rate" in form["rate_objective_pct"].description


@pytest.mark.parametrize(
    ("name", "value"),
    [("alert_rule", BURN_RATE), ("rate_objective_pct", 0.5)],
)
def test_a_setting_is_the_forms_default(monkeypatch, name, value):
    monkeypatch.setattr(params, name.upper(), value)
    assert dag_params()[name].value == value


@pytest.mark.parametrize(
    ("rule", "objective", "message"),
    [
        (
            "burnrate",
            1.0,
            r"\[batch_cleanup\] settings: alert_rule must be one of count, burn_rate, got 'burnrate'",
        ),
        (COUNT, 0.0, r"\[batch_cleanup\] settings: rate_objective_pct must be a number above 0"),
        (BURN_RATE, 20.0, r"\[batch_cleanup\] settings: rate_objective_pct 20 cannot work with alert_rule"),
    ],
    ids=["unknown-rule", "zero-objective", "objective-burn-rate-cannot-reach"],
)
def test_settings_no_run_could_work_with_fail_the_dags_import_naming_them(
    monkeypatch, rule, objective, message
):
    monkeypatch.setattr(params, "ALERT_RULE", rule)
    monkeypatch.setattr(params, "RATE_OBJECTIVE_PCT", objective)
    with pytest.raises(ValueError, match=message):
        dag_params()
