"""Environment variables are validated like the configuration files (issue 14): every bad variable named with what
is wrong and how to fix it, all of them at once, a misspelt ALPHA_* name pointed at the right one."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from engine.core.envcheck import TOOL_VARIABLES, VARIABLES, EnvError, check_env, require_valid_env
from engine.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-shared-unsubscribe-secret-of-44-characters-"


@pytest.fixture
def env_dir(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    return tmp_path


BAD = [
    ("ALPHA_DEMO", "maybe", "not a boolean", "1/0, true/false, yes/no or on/off"),
    ("EMERGENCY_STOP", "ture", "not a boolean", "true/false"),
    ("ALPHA_DEBUG", "2", "not a boolean", "on/off"),
    ("ALPHA_REPLY_SECOND_OPINION", "sometimes", "not a boolean", "yes/no"),
    ("ALPHA_UNSUBSCRIBE_SECRET", "too-short-secret", "at least 32 characters", "secrets.token_urlsafe(32)"),
    ("ALPHA_UNSUBSCRIBE_SECRET", SECRET + " ", "white space", "used exactly as given"),
    ("DATABASE_URL", "mysql://app:pw@db/alpha", "unsupported database driver 'mysql'", "postgresql+psycopg://"),
    ("DATABASE_URL", "postgresql+psycopg2://app:pw@db/alpha", "unsupported database driver", "sqlite:///"),
    ("DATABASE_URL", "not a url at all", "not a valid database URL", "postgresql+psycopg://"),
    ("DATABASE_URL", "postgresql://app:pw@db:99999/alpha", "port 99999 is out of range", "1 to 65535"),
    ("DATABASE_URL", "postgresql+psycopg://app:pw@db:5432", "names no database", "dbname"),
    ("GHL_BASE_URL", "services.leadconnectorhq.com", "not an http(s) URL", "https://services.leadconnectorhq.com"),
    ("GHL_BASE_URL", "ftp://ghl.example", "unsupported scheme 'ftp'", "http(s) URL"),
    ("ALPHA_WEBHOOK_URL", "http:///hooks", "has no host", "http(s) URL"),
    ("SLACK_WEBHOOK_URL", "hooks.slack.com/services/T/B/X", "not an http(s) URL", "http(s) URL"),
    ("OPENAI_BASE_URL", "https://api.openai.com:http/v1", "not a valid URL", "http(s) URL"),
    ("GHL_TIMEOUT_SECONDS", "fast", "not a number", "greater than 0 and at most 600"),
    ("GHL_TIMEOUT_SECONDS", "0", "out of range", "greater than 0"),
    ("GHL_TIMEOUT_SECONDS", "inf", "not a finite number", "at most 600"),
    ("ALPHA_LLM_CONCURRENCY", "0", "out of range", "at least 1 and at most 256"),
    ("ALPHA_LLM_CONCURRENCY", "8.5", "not a whole number", "at least 1"),
    ("ANTHROPIC_RPM", "lots", "not a whole number", "at least 1"),
    ("ALPHA_AUDIT_CHECKPOINT_SECONDS", "hourly", "not a number of seconds", "at least 0"),
    ("ALPHA_AUDIT_CHECKPOINT_ROWS", "-5", "must be 0 (off) or positive", ""),
    ("ALPHA_AUDIT_CHECKPOINTS", "ftp://vault.internal/anchors", "unsupported scheme 'ftp'", "file path or an http(s)"),
    ("ALPHA_AUDIT_CHECKPOINTS", "{dir}", "is a directory", "path of a file"),
    ("ALPHA_AUDIT_SIGNING_KEY_FILE", "{dir}/missing.key", "no such file", "openssl genpkey"),
    ("ALPHA_DATA_DIR", "{file}", "is not a folder", "give a folder"),
    ("ALPHA_CONFIG_DIR", "{file}", "is not a folder", "give a folder"),
    ("ALPHA_USERS_FILE", "{dir}", "is a directory", "path of a file"),
    ("ALPHA_ENV_FILE", "{dir}", "is a directory", "path of a file"),
    ("ALPHA_LOG_LEVEL", "loud", "not an allowed value", "DEBUG, INFO, WARNING"),
    ("ALPHA_LOG_FORMAT", "xml", "not an allowed value", "json, text"),
    ("ALPHA_ACTOR", "ops\x1b[31m", "control characters", "plain text"),
    ("GHL_WEBHOOK_PUBLIC_KEY", "not-a-key", "not a PEM public key", "PEM file"),
    ("GHL_WEBHOOK_ED25519_PUBLIC_KEY", "bm90IGEga2V5", "not a PEM public key, nor base64 of a 32-byte", "PEM"),
]


@pytest.mark.parametrize("name,value,what,fix", BAD, ids=[f"{b[0]}={b[1][:16]}" for b in BAD])
def test_each_bad_variable_is_named_with_its_problem_and_fix(env_dir, name, value, what, fix):
    value = value.format(dir=env_dir / "adir", file=env_dir / "afile")
    problems = check_env({name: value})
    assert len(problems) == 1, problems
    text = str(problems[0])
    assert text.startswith(f"environment variable {name}") and what in text and fix in text, text


def test_several_problems_are_listed_at_once_and_refused_like_config_errors():
    env = {"ALPHA_DEMO": "maybe", "GHL_BASE_URL": "ftp://x", "ALPHA_LLM_CONCURRENCY": "-1",
           "DATABASE_URL": "oracle://u:pw@h/db", "ALPHA_UNSUBSCRIBE_SECRT": SECRET}
    names = {p.name for p in check_env(env)}
    assert names == set(env)
    with pytest.raises(EnvError) as e:
        require_valid_env(env)
    assert isinstance(e.value, ConfigError) and e.value.exit_code == 2  # the CLI exits 2, as on a bad config file
    assert len(e.value.problems) == 5 and str(e.value).startswith("invalid environment:\n  - ")
    for name in env:
        assert name in str(e.value)


@pytest.mark.parametrize("typo,right", [
    ("ALPHA_UNSUBSCRIBE_SECRT", "ALPHA_UNSUBSCRIBE_SECRET"),
    ("ALPHA_UNSUBSCRIBE_SECRETS", "ALPHA_UNSUBSCRIBE_SECRET"),
    ("ALPHA_DEMO_PASSWROD", "ALPHA_DEMO_PASSWORD"),
    ("ALPHA_DATADIR", "ALPHA_DATA_DIR"),
    ("ALPHA_CONFG_DIR", "ALPHA_CONFIG_DIR"),
    ("ALPHA_LOG_LEVELS", "ALPHA_LOG_LEVEL"),
])
def test_a_typod_alpha_name_suggests_the_right_one(typo, right):
    problems = check_env({typo: "1"})
    assert len(problems) == 1
    assert problems[0].name == typo and f"probably a typo of {right}" in str(problems[0])


def test_an_unrelated_alpha_name_and_other_programs_variables_are_left_alone():
    assert check_env({"ALPHA_SOMETHING_UNRELATED_ENTIRELY": "x", "PATH": "/usr/bin", "HOME": "/root",
                      "ALPHA_TEST_PG_URL": "postgresql+psycopg://x@h/db"}) == []


def test_secrets_and_passwords_are_never_shown():
    problems = check_env({"ALPHA_UNSUBSCRIBE_SECRET": "hunter2-hunter2",
                          "DATABASE_URL": "mysql://app:hunter3-pw@db/alpha",
                          "SLACK_WEBHOOK_URL": "hooks.slack.com/services/T0/B0/hunter4token"})
    text = "\n".join(map(str, problems))
    assert len(problems) == 3
    for secret in ("hunter2", "hunter3", "hunter4"):
        assert secret not in text
    assert "<secret, 15 characters>" in text


def test_a_valid_environment_passes(tmp_path):
    key = tmp_path / "audit.key"
    key.write_text("k")
    env = {
        "EMERGENCY_STOP": "false", "ALPHA_DEMO": "1", "ALPHA_DEBUG": "off", "ALPHA_REPLY_SECOND_OPINION": "Yes",
        "DATABASE_URL": "postgres://alpha:secret@db.internal:5432/alpha", "ALPHA_CONFIG_DIR": str(ROOT / "config"),
        "ALPHA_DATA_DIR": str(tmp_path / "data"), "ALPHA_ENV_FILE": str(tmp_path / "none.env"),
        "ALPHA_UNSUBSCRIBE_SECRET": SECRET, "GHL_API_KEY": "pit-123", "GHL_LOCATION_ID": "loc1",
        "GHL_BASE_URL": "http://127.0.0.1:8765", "GHL_TIMEOUT_SECONDS": "7.5", "ALPHA_LLM_CONCURRENCY": "24",
        "ANTHROPIC_RPM": "3000", "OPENAI_RPM": "", "ALPHA_AUDIT_CHECKPOINT_SECONDS": "0",
        "ALPHA_AUDIT_CHECKPOINT_ROWS": "1000", "ALPHA_AUDIT_CHECKPOINTS": "https://vault.example/anchors?t=1",
        "ALPHA_AUDIT_SIGNING_KEY_FILE": str(key), "ALPHA_LOG_LEVEL": "warn", "ALPHA_LOG_FORMAT": "JSON",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X", "ALPHA_COOKIE_KEY": "anything (no longer read)",
        "RB2B_WEBHOOK_SECRET": "s3cret", "ALPHA_ACTOR": "ops on-call", "DATABASE_URL_UNRELATED": "x",
    }
    assert check_env(env) == []
    require_valid_env(env)
    assert check_env({"DATABASE_URL": "sqlite:///.data/alpha.db"}) == []


def test_the_example_env_file_is_valid_and_documents_every_variable():
    example = dotenv_values(ROOT / ".env.example")
    text = (ROOT / ".env.example").read_text()
    assert check_env({k: v or "" for k, v in example.items()}) == []
    undocumented = [n for n, v in VARIABLES.items() if v.kind != "ignored" and not re.search(rf"\b{n}=", text)]
    assert undocumented == []


# every variable the engine reads, found in its source: os.environ.get("X"), os.environ["X"], getenv("X"), and the
# NAME_ENV = "X" constants some modules read through
_READ = re.compile(r"""(?:environ(?:\.get)?\s*[\(\[]\s*|getenv\(\s*)["']([A-Z][A-Z0-9_]+)["']""")
_CONST = re.compile(r"""^\s*[A-Z_]*_ENVS?\b[^=\n]*=\s*(.+)$""", re.M)


def test_every_variable_the_engine_reads_is_in_the_table():
    names = set()
    for path in (ROOT / "engine").rglob("*.py"):
        src = path.read_text(encoding="utf-8")
        names |= set(_READ.findall(src))
        for rhs in _CONST.findall(src):
            names |= set(re.findall(r"""["']([A-Z][A-Z0-9_]{3,})["']""", rhs))
    assert {"DATABASE_URL", "ALPHA_UNSUBSCRIBE_SECRET", "ANTHROPIC_RPM", "ALPHA_AUDIT_CHECKPOINTS"} <= names
    unknown = sorted(n for n in names - set(VARIABLES) - set(TOOL_VARIABLES) if n != "CI")
    assert unknown == [], f"add these to engine/core/envcheck.py VARIABLES (and .env.example): {unknown}"


def test_a_misspelt_kill_switch_in_the_env_file_is_refused(tmp_path):
    """EMERGENCY_STOP is read from .env on every decision (never copied into the environment): 'ture' there would
    silently leave the kill switch off."""
    env_file = tmp_path / ".env"
    env_file.write_text("EMERGENCY_STOP=ture\n")
    problems = check_env({}, env_file)
    assert [p.name for p in problems] == [f"EMERGENCY_STOP (in {env_file})"]
    assert "not a boolean" in str(problems[0])
    env_file.write_text("EMERGENCY_STOP=true\n")
    assert check_env({}, env_file) == [] and check_env({}, tmp_path / "missing.env") == []
