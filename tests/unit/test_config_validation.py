"""Configuration validation (engine/core/config.py load_settings): every problem names file, key, value, what is
allowed."""
from __future__ import annotations

import json

import pytest

from engine.core.actions import ACTIONS
from engine.core.config import PHASES, load_settings
from engine.core.errors import ConfigError
from tests.conftest import CONFIG


def problems_of(cdir) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_settings(cdir)
    err = ei.value
    assert err.exit_code == 2
    # the message lists every problem
    for p in err.problems:
        assert p in str(err)
    return err.problems


def problem_for(problems: list[str], key: str) -> str:
    hits = [p for p in problems if f"key '{key}'" in p]
    assert len(hits) == 1, f"no single problem for {key}: {problems}"
    return hits[0]


# ------------------------------------------------------------------------------------------ shipped config

def test_shipped_config_loads(settings):
    assert settings.config_dir == CONFIG
    assert settings.production.rollout_phase.current in PHASES
    assert settings.limits.daily_limit == 150
    assert settings.limits.limits_timezone == "UTC"
    assert set(settings.permissions.agents) >= {"HUNTER", "GHL_MASTER"}
    for role in settings.permissions.agents.values():
        assert set(role.actions) <= set(ACTIONS)
    assert settings.spam_terms and settings.forbidden_claims
    assert "customer-one.example" in settings.customer_exclusions
    assert "competitor-one.example" in settings.competitor_exclusions
    # the sender's URL is normalised without a trailing slash
    assert not settings.production.sender.unsubscribe_base_url.endswith("/")


# ------------------------------------------------------------------------------------------ effective daily cap

@pytest.mark.parametrize("phase, expected", [(1, (10, "WARMUP_CAP")), (2, (25, "WARMUP_CAP")), (4, (100, "WARMUP_CAP")),
                                             (5, (150, "LIMIT_DAILY")), (9, (150, "LIMIT_DAILY")),
                                             (0, (10, "WARMUP_CAP"))])
def test_effective_daily_cap_is_min_of_warmup_cap_and_daily_limit(settings, phase, expected):
    assert settings.effective_daily_cap(phase) == expected


def test_effective_daily_cap_when_daily_limit_is_smaller(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 20}})
    assert s.effective_daily_cap(1) == (10, "WARMUP_CAP")
    assert s.effective_daily_cap(2) == (20, "LIMIT_DAILY")
    assert s.effective_daily_cap(5) == (20, "LIMIT_DAILY")


def test_effective_daily_cap_without_warmup(settings_factory):
    s = settings_factory(warmup={"enabled": False})
    assert s.effective_daily_cap(1) == (150, "LIMIT_DAILY")


# ------------------------------------------------------------------------------------------ single problems

def test_wrong_type(config_factory):
    cdir = config_factory(production={"email_limits": {"daily_limit": "lots"}})
    p = problem_for(problems_of(cdir), "email_limits.daily_limit")
    assert p.startswith(f"{cdir / 'production.json'}: ")
    assert '= "lots"' in p
    assert "valid integer" in p


@pytest.mark.parametrize("over, key", [
    ({"email_limits": {"hourly_limit": True}}, "email_limits.hourly_limit"),
    ({"email_limits": {"daily_limit": "150"}}, "email_limits.daily_limit"),
    ({"email_behavior": {"actually_send": "yes"}}, "email_behavior.actually_send"),
])
def test_wrong_type_that_pydantic_could_coerce(config_factory, over, key):
    cdir = config_factory(production=over)
    p = problem_for(problems_of(cdir), key)
    assert str(cdir / "production.json") in p


@pytest.mark.parametrize("key, value, allowed", [
    ("daily_limit", -1, "greater than or equal to 0"),
    ("hourly_limit", -20, "greater than or equal to 0"),
    ("min_delay_seconds", -5, "greater than or equal to 0"),
])
def test_out_of_range_limit(config_factory, key, value, allowed):
    cdir = config_factory(production={"email_limits": {key: value}})
    p = problem_for(problems_of(cdir), f"email_limits.{key}")
    assert p == f"{cdir / 'production.json'}: key 'email_limits.{key}' = {value}: Input should be {allowed}"


def test_out_of_range_rate(config_factory):
    cdir = config_factory(production={"domain_health": {"max_bounce_rate": 5}})
    p = problem_for(problems_of(cdir), "domain_health.max_bounce_rate")
    assert "= 5" in p and "less than or equal to 1" in p


def test_unknown_phase(config_factory):
    cdir = config_factory(production={"rollout_phase": {"current": "production"}})
    p = problem_for(problems_of(cdir), "rollout_phase.current")
    assert p == (f"{cdir / 'production.json'}: key 'rollout_phase.current' = \"production\": "
                 "must be one of 'shadow', 'parallel', 'assisted' or 'autonomous'")


def test_unknown_key_typo(config_factory):
    cdir = config_factory(production={"email_limits": {"daly_limit": 150}})
    problems = problems_of(cdir)
    p = problem_for(problems, "email_limits.daly_limit")
    assert p.startswith(f"{cdir / 'production.json'}: ")
    assert "not a known setting" in p


def test_unknown_key_typo_replacing_the_real_key(config_factory):
    cdir = config_factory()
    path = cdir / "production.json"
    data = json.loads(path.read_text())
    data["email_limits"]["daly_limit"] = data["email_limits"].pop("daily_limit")
    path.write_text(json.dumps(data))
    problems = problems_of(cdir)
    assert "not a known setting" in problem_for(problems, "email_limits.daly_limit")
    assert problem_for(problems, "email_limits.daily_limit") == (
        f"{path}: key 'email_limits.daily_limit' is missing (required)")


def test_unknown_key_message_names_value_and_allowed_keys(config_factory):
    cdir = config_factory(production={"email_limits": {"limits_timezon": "Europe/Berlin"}})
    p = problem_for(problems_of(cdir), "email_limits.limits_timezon")
    assert '"Europe/Berlin"' in p
    assert "limits_timezone" in p.replace("'email_limits.limits_timezon'", "")


@pytest.mark.parametrize("section, key, tz", [
    ("email_limits", "limits_timezone", "Mars/Olympus_Mons"),
    ("working_hours", "default_timezone", "New York"),
])
def test_invalid_time_zone(config_factory, section, key, tz):
    cdir = config_factory(production={section: {key: tz}})
    p = problem_for(problems_of(cdir), f"{section}.{key}")
    assert p == (f"{cdir / 'production.json'}: key '{section}.{key}' = \"{tz}\": "
                 "must be an IANA time zone name such as 'America/New_York' or 'UTC'")


def test_invalid_working_hours_time(config_factory):
    cdir = config_factory(production={"working_hours": {"start": "8am"}})
    p = problem_for(problems_of(cdir), "working_hours.start")
    assert '= "8am"' in p and "HH:MM" in p


def test_unknown_day(config_factory):
    cdir = config_factory(production={"working_hours": {"days": ["mon", "funday"]}})
    p = problem_for(problems_of(cdir), "working_hours.days[1]")
    assert '= "funday"' in p and "'mon'" in p and "'sun'" in p


def test_invalid_json_names_line_and_column(config_factory):
    cdir = config_factory()
    path = cdir / "production.json"
    path.write_text('{\n  "rollout_phase": {"current": "shadow"}\n  "email_limits": {}\n}\n')
    problems = problems_of(cdir)
    assert problems == [f"{path}: not valid JSON at line 3, column 3: Expecting ',' delimiter"]


def test_top_level_must_be_an_object(config_factory):
    cdir = config_factory()
    (cdir / "warmup_plan.json").write_text("[1, 2]")
    assert problems_of(cdir) == [f"{cdir / 'warmup_plan.json'}: must hold a JSON object at the top level, found list"]


@pytest.mark.parametrize("name", ["production.json", "warmup_plan.json", "permissions.json", "spam_words.txt",
                                  "forbidden_claims.txt"])
def test_missing_file(config_factory, name):
    cdir = config_factory()
    (cdir / name).unlink()
    assert problems_of(cdir) == [f"{cdir / name}: file is missing"]


def test_missing_exclusion_lists_are_optional(config_factory):
    cdir = config_factory()
    (cdir / "exclusions" / "customers.txt").unlink()
    (cdir / "exclusions" / "competitors.txt").unlink()
    s = load_settings(cdir)
    assert s.customer_exclusions == () and s.competitor_exclusions == ()


def test_empty_spam_list_is_refused(config_factory):
    cdir = config_factory()
    (cdir / "spam_words.txt").write_text("# only a comment\n\n")
    assert problems_of(cdir) == [f"{cdir / 'spam_words.txt'}: holds no terms (at least one is required)"]


def test_missing_config_folder(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_settings(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(ei.value)
    assert "configuration folder not found" in str(ei.value)


def test_unknown_action_in_permissions(config_factory):
    cdir = config_factory(permissions={"agents": {"HUNTER": {"actions": ["read_linkedin_profile", "send_sms"]}}})
    p = problem_for(problems_of(cdir), "agents.HUNTER.actions[1]")
    assert p.startswith(f"{cdir / 'permissions.json'}: key 'agents.HUNTER.actions[1]' = \"send_sms\": unknown action; "
                        "allowed: ")
    allowed = p.split("allowed: ", 1)[1].split(", ")
    assert allowed == sorted(ACTIONS)


def test_unknown_api_in_breakers(config_factory):
    cdir = config_factory(production={"circuit_breakers": {"apis": {"twitter": {
        "failure_threshold": 1, "recovery_timeout_seconds": 1, "success_threshold": 1}}}})
    p = problem_for(problems_of(cdir), "circuit_breakers.apis")
    assert "unknown API 'twitter'" in p and "ghl" in p


@pytest.mark.parametrize("production,key", [
    ({"sender": {"internal_addresses": ["\ud800"]}}, "sender.internal_addresses"),
    ({"circuit_breakers": {"apis": {"\ud800": {"failure_threshold": 1, "recovery_timeout_seconds": 1,
                                                "success_threshold": 1}}}}, "circuit_breakers.apis"),
])
def test_a_lone_surrogate_in_a_refused_value_is_a_problem_not_a_crash(config_factory, production, key):
    """The refusal quotes the value escaped (pydantic cannot build an error message holding a lone surrogate)."""
    p = problem_for(problems_of(config_factory(production=production)), key)
    assert "\\ud800" in p


def test_an_unknown_action_holding_a_nul_is_named_escaped(config_factory):
    cdir = config_factory(permissions={"agents": {"SEGMENTOR": {"actions": ["a\x00b"]}}})
    p = problem_for(problems_of(cdir), "agents.SEGMENTOR.actions[0]")
    assert "\x00" not in p and '"a\\u0000b": unknown action' in p


# ------------------------------------------------------------------------------------------ many problems

def test_several_problems_reported_at_once(config_factory):
    cdir = config_factory(
        production={"rollout_phase": {"current": "live"},
                    "email_limits": {"daily_limit": "lots", "hourly_limit": -1, "daly_limit": 3,
                                     "limits_timezone": "Mars/Base"}},
        warmup={"enabled": "sometimes"},
    )
    (cdir / "forbidden_claims.txt").unlink()
    problems = problems_of(cdir)
    prod, warm = cdir / "production.json", cdir / "warmup_plan.json"
    assert problem_for(problems, "rollout_phase.current").startswith(f"{prod}: ")
    assert '"lots"' in problem_for(problems, "email_limits.daily_limit")
    assert "= -1" in problem_for(problems, "email_limits.hourly_limit")
    assert "not a known setting" in problem_for(problems, "email_limits.daly_limit")
    assert '"Mars/Base"' in problem_for(problems, "email_limits.limits_timezone")
    assert problem_for(problems, "enabled").startswith(f"{warm}: key 'enabled' = \"sometimes\": ")
    assert f"{cdir / 'forbidden_claims.txt'}: file is missing" in problems
    assert len(problems) == 7


def test_unknown_action_reported_even_when_production_json_is_bad(config_factory):
    cdir = config_factory(production={"email_limits": {"daily_limit": -1}},
                          permissions={"agents": {"HUNTER": {"actions": ["send_sms"]}}})
    problems = problems_of(cdir)
    problem_for(problems, "email_limits.daily_limit")
    problem_for(problems, "agents.HUNTER.actions[0]")
