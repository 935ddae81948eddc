"""Configuration: `config/*.json` and the editable word lists, validated at load.

A bad file yields one message per problem naming the file, the key, the value and what is allowed,
and the engine refuses to run (``ConfigError``). Nothing here touches the database.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.core import defaults
from engine.core.errors import ConfigError, InvalidRequest

PHASES = ("shadow", "parallel", "assisted", "autonomous")
Phase = Literal["shadow", "parallel", "assisted", "autonomous"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXTERNAL_APIS = ("ghl", "linkedin", "clay", "supabase", "llm", "slack")

PROJECT_ROOT = defaults.PROJECT_ROOT


class _Strict(BaseModel):
    # strict: a JSON string "yes" is not a boolean and "150" is not a number (no silent coercion of safety flags)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    note: str | None = None


def _check_tz(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to be a file name
        raise ValueError("must be an IANA time zone name such as 'America/New_York' or 'UTC'") from None
    return value


class RolloutPhase(_Strict):
    current: Phase


class EmailBehavior(_Strict):
    actually_send: bool
    shadow_mode: bool


class EmailLimits(_Strict):
    monthly_limit: int = Field(ge=0)
    daily_limit: int = Field(ge=0)
    hourly_limit: int = Field(ge=0)
    per_domain_hourly_limit: int = Field(ge=0)
    min_delay_seconds: int = Field(ge=0)
    limits_timezone: str = "UTC"

    _tz = field_validator("limits_timezone")(_check_tz)


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class WorkingHours(_Strict):
    start: str
    end: str
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]]
    default_timezone: str

    _tz = field_validator("default_timezone")(_check_tz)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("must be a time of day as HH:MM (00:00 to 24:00)")
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.minutes(self.start) >= self.minutes(self.end):
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    @staticmethod
    def minutes(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)


class Sender(_Strict):
    company_name: str = Field(min_length=1)
    postal_address: str = Field(min_length=5)
    from_addresses: list[str] = Field(min_length=1)
    unsubscribe_base_url: str
    internal_addresses: list[str] = []

    @field_validator("unsubscribe_base_url")
    @classmethod
    def _https(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an absolute http(s) URL such as 'https://example.com/unsubscribe'")
        return v.rstrip("/")

    @field_validator("from_addresses", "internal_addresses")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for a in v:
            if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", a):
                raise ValueError(f"{a!r} is not an email address")
        return [a.lower() for a in v]


class BreakerSettings(_Strict):
    failure_threshold: int = Field(ge=1)
    recovery_timeout_seconds: int = Field(ge=1)
    success_threshold: int = Field(ge=1)


class CircuitBreakers(_Strict):
    default: BreakerSettings
    apis: dict[str, BreakerSettings] = {}

    @field_validator("apis")
    @classmethod
    def _known(cls, v: dict) -> dict:
        for name in v:
            if name not in EXTERNAL_APIS:
                raise ValueError(f"unknown API {name!r}; allowed: {', '.join(EXTERNAL_APIS)}")
        return v

    def for_api(self, name: str) -> BreakerSettings:
        return self.apis.get(name, self.default)


class DomainHealthConfig(_Strict):
    cooling_threshold: float = Field(ge=0, le=100)
    recovery_threshold: float = Field(ge=0, le=100)
    recheck_seconds: int = Field(ge=1)
    max_bounce_rate: float = Field(ge=0, le=1)
    max_complaint_rate: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _order(self):
        if self.recovery_threshold < self.cooling_threshold:
            raise ValueError("recovery_threshold must be at least cooling_threshold")
        return self


class ApprovalPolicy(_Strict):
    high_risk_tiers: list[int] = [1]
    high_risk_actions: list[str] = ["send_campaign_email", "crm_delete_contact"]


class Grounding(_Strict):
    max_age_hours: float = Field(gt=0)


class Reconciliation(_Strict):
    sending_stale_seconds: int = Field(ge=1)


class Comparison(_Strict):
    """The AI-vs-human go/no-go: agreement strictly above the threshold over at least min_labels labels."""

    min_labels: int = Field(ge=1)
    agreement_threshold: float = Field(gt=0, lt=1)


class AddressRules(_Strict):
    """How two spellings of one mailbox are recognised as the same recipient (engine/core/identity.py): for
    suppression, exclusion, first-touch and per-recipient limits. Over-matching only ever holds mail back."""

    plus_tag_separators: list[str] = Field(default_factory=lambda: ["+"])   # user+tag@x is user@x (every domain)
    plus_tag_domains: list[str] = Field(default_factory=list)  # empty: every domain; else only these
    dot_insensitive_domains: list[str] = Field(default_factory=lambda: ["gmail.com", "googlemail.com"])
    domain_aliases: dict[str, str] = Field(default_factory=lambda: {"googlemail.com": "gmail.com"})

    @field_validator("plus_tag_separators")
    @classmethod
    def _seps(cls, v):
        for sep in v:
            if len(sep) != 1 or sep.isalnum() or sep in "@.":
                raise ValueError(f"{sep!r} is not a single non-alphanumeric character other than '@' and '.'")
        return v


class ProductionConfig(_Strict):
    rollout_phase: RolloutPhase
    block_production_writes: bool
    email_behavior: EmailBehavior
    email_limits: EmailLimits
    working_hours: WorkingHours
    sender: Sender
    circuit_breakers: CircuitBreakers
    domain_health: DomainHealthConfig
    approval: ApprovalPolicy = ApprovalPolicy()
    grounding: Grounding = Grounding(max_age_hours=720)
    reconciliation: Reconciliation = Reconciliation(sending_stale_seconds=300)
    comparison: Comparison = Comparison(min_labels=50, agreement_threshold=0.75)
    address_rules: AddressRules = AddressRules()


class WarmupCriteria(_Strict):
    min_days: int = Field(ge=0)
    min_sends: int = Field(ge=0)
    max_bounce_rate: float = Field(ge=0, le=1)
    max_complaint_rate: float = Field(ge=0, le=1)


class WarmupPhase(_Strict):
    phase: int = Field(ge=1)
    daily_cap: int = Field(ge=0)
    criteria: WarmupCriteria


class WarmupPlan(_Strict):
    enabled: bool
    phases: list[WarmupPhase] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self):
        nums = [p.phase for p in self.phases]
        if nums != list(range(1, len(nums) + 1)):
            raise ValueError(f"phases must be numbered 1..{len(nums)} in order, found {nums}")
        caps = [p.daily_cap for p in self.phases]
        if caps != sorted(caps):
            raise ValueError(f"daily_cap must not decrease from phase to phase, found {caps}")
        return self

    def cap_for(self, phase: int) -> int:
        phase = max(1, min(phase, len(self.phases)))
        return self.phases[phase - 1].daily_cap


class AgentRateLimits(_Strict):
    per_minute: int | None = Field(default=None, ge=0)
    per_hour: int | None = Field(default=None, ge=0)


class AgentRole(_Strict):
    description: str = ""
    actions: list[str]
    platforms: list[str]
    rate_limits: AgentRateLimits = AgentRateLimits()


class PermissionsConfig(_Strict):
    agents: dict[str, AgentRole]


@dataclass(frozen=True)
class Settings:
    """Everything the engine reads from configuration, validated."""

    config_dir: Path
    production: ProductionConfig
    warmup: WarmupPlan
    permissions: PermissionsConfig
    spam_terms: tuple[str, ...]
    forbidden_claims: tuple[str, ...]
    customer_exclusions: tuple[str, ...]
    competitor_exclusions: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def limits(self) -> EmailLimits:
        return self.production.email_limits

    def effective_daily_cap(self, warmup_phase: int) -> tuple[int, str]:
        """The smaller of the warm-up cap and daily_limit, and which of the two binds."""
        daily = self.limits.daily_limit
        if self.warmup.enabled:
            cap = self.warmup.cap_for(warmup_phase)
            if cap < daily:
                return cap, "WARMUP_CAP"
        return daily, "LIMIT_DAILY"


# --------------------------------------------------------------------------------------------- loading

def default_config_dir() -> Path:
    """The configuration folder: ``$ALPHA_CONFIG_DIR``; else ``./config`` when the working directory holds one (a
    checkout, or a deployment's own folder); else the defaults shipped with the package (read-only: ``alpha init
    --new-config DIR`` writes an editable copy)."""
    env = os.environ.get("ALPHA_CONFIG_DIR")
    if env:
        return Path(env)
    local = Path.cwd() / "config"
    if (local / "production.json").exists():
        return local
    return defaults.packaged_config_dir()


def write_new_config(dest: str | Path) -> list[Path]:
    """Write a copy of the packaged default configuration into ``dest`` for the operator to edit; the files
    written. Refuses (InvalidRequest naming every file) rather than overwrite anything."""
    try:
        return defaults.write_new_config(dest)
    except defaults.NewConfigRefused as e:
        raise InvalidRequest(str(e)) from None
    except OSError as e:
        raise InvalidRequest(f"{getattr(e, 'filename', None) or dest}: cannot write the configuration "
                             f"({e.strerror or e})") from None


def refuse_packaged_config_write(path: str | Path) -> None:
    """Raise ConfigError when ``path`` lies in the configuration installed with the package: it is read-only by
    contract (an upgrade replaces it), so state such as the console users file must not be written there."""
    if defaults.is_packaged_config(path):
        raise ConfigError([f"{path}: is inside the default configuration installed with the package, which is "
                           "read-only; run `alpha init --new-config DIR`, set ALPHA_CONFIG_DIR=DIR and try again "
                           "(or set ALPHA_USERS_FILE for the users file alone)"])


def _printable(text: str) -> str:
    """``text`` as shown in a message: control characters and lone surrogates escaped (\\x00, \\ud800)."""
    return text if text.isprintable() else repr(text)[1:-1]


def _fmt_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _printable(str(part))
    return out or "(top level)"


def _dig(data: Any, loc: tuple) -> tuple[bool, Any]:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, cur


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names a config object accepts at ``loc`` (following nested models, dicts and lists)."""
    cur: Any = model
    for part in loc:
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            field = cur.model_fields.get(str(part))
            if field is None:
                return []
            cur = field.annotation
        else:  # dict[str, X] or list[X]: step into X
            args = get_args(cur)
            cur = args[-1] if args else None
        while get_origin(cur) is not None and not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            inner = [a for a in get_args(cur) if a is not type(None)]
            if get_origin(cur) in (dict, list) or len(inner) != 1:
                break
            cur = inner[0]
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return [k for k in cur.model_fields if k != "note"]
    return []


def _pydantic_problems(path: Path, data: Any, err: ValidationError, model: type[BaseModel]) -> list[str]:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = _fmt_loc(loc)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            problems.append(f"{path}: key '{key}' is missing (required)")
            continue
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(f"{path}: key '{key}' = {_shown(e.get('input'))} is not a known setting; {hint}"
                            f"allowed here: {', '.join(allowed)}")
            continue
        if e["type"] == "literal_error" and "expected" in e.get("ctx", {}):
            msg = f"must be one of {e['ctx']['expected']}"
        if not loc:  # a rule about the whole file (it names the keys it is about)
            problems.append(f"{path}: {msg}")
            continue
        found, value = _dig(data, loc)
        problems.append(f"{path}: key '{key}' = {_shown(value) if found else '(absent)'}: {msg}")
    return problems


def _shown(value: Any, limit: int = 120) -> str:
    """A value as JSON for a message, cut to ``limit`` characters."""
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_text(path: Path, problems: list[str], *, required: bool = True) -> str | None:
    """A configuration file's UTF-8 text (a byte-order mark is dropped), or None with the reason appended to
    ``problems`` (nothing appended for a missing file that is not ``required``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            problems.append(f"{path}: file is missing")
        return None
    except IsADirectoryError:
        problems.append(f"{path}: is a directory, not a file")
        return None
    except OSError as e:
        problems.append(f"{path}: cannot be read ({e.strerror or e})")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        problems.append(f"{path}: cannot be read: line {line} is not UTF-8 text ({e.reason} at byte {e.start}); "
                        "save the file as UTF-8")
        return None


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON value (write a number or null)")


def _load_json(path: Path, problems: list[str]) -> Any:
    """The file's JSON (strict: no NaN or Infinity), or None with the reason appended to ``problems``. A UTF-8
    byte-order mark, as some editors write, is accepted."""
    text = read_text(path, problems)
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as e:
        problems.append(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}")
    except RecursionError:
        problems.append(f"{path}: not valid JSON: nested too deeply")
    except ValueError as e:  # NaN / Infinity, an integer of more than 4300 digits
        problems.append(f"{path}: not valid JSON: {str(e).split(';')[0]}")
    return None


def json_object(path: Path, problems: list[str]) -> dict | None:
    """The file's top-level JSON object, or None with the reason appended to ``problems``."""
    n = len(problems)
    data = _load_json(path, problems)
    if len(problems) > n:
        return None
    if not isinstance(data, dict):
        found = "null" if data is None else type(data).__name__
        problems.append(f"{path}: must hold a JSON object at the top level, found {found}")
        return None
    return data


def _validate(model: type[BaseModel], path: Path, problems: list[str]):
    data = json_object(path, problems)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems.extend(_pydantic_problems(path, data, e, model))
        return None


def load_word_list(path: Path, problems: list[str], *, required: bool = True) -> tuple[str, ...]:
    text = read_text(path, problems, required=required)
    if text is None:
        return ()
    terms = []
    seen = set()
    for n, line in enumerate(text.splitlines(), 1):
        t = " ".join(line.strip().split())
        if not t or t == "#" or t.startswith("# "):  # "#1 in the world" is a term, not a comment
            continue
        if len(t) > 200:
            problems.append(f"{path}: line {n} is longer than 200 characters")
            continue
        if t.lower() not in seen:
            seen.add(t.lower())
            terms.append(t)
    return tuple(terms)


def load_settings(config_dir: str | Path | None = None) -> Settings:
    """Load and validate every configuration file; raise ConfigError listing every problem."""
    cdir = Path(config_dir) if config_dir else default_config_dir()
    problems: list[str] = []
    if not cdir.is_dir():
        raise ConfigError([f"{cdir}: configuration folder not found "
                           "(set ALPHA_CONFIG_DIR to a folder made by `alpha init --new-config DIR`)"])
    prod = _validate(ProductionConfig, cdir / "production.json", problems)
    warm = _validate(WarmupPlan, cdir / "warmup_plan.json", problems)
    perms = _validate(PermissionsConfig, cdir / "permissions.json", problems)
    spam = load_word_list(cdir / "spam_words.txt", problems)
    claims = load_word_list(cdir / "forbidden_claims.txt", problems)
    customers = load_word_list(cdir / "exclusions" / "customers.txt", problems, required=False)
    competitors = load_word_list(cdir / "exclusions" / "competitors.txt", problems, required=False)
    if spam == () and not any("spam_words" in p for p in problems):
        problems.append(f"{cdir / 'spam_words.txt'}: holds no terms (at least one is required)")
    if perms is not None:
        from engine.core.actions import ACTIONS

        for agent, role in perms.agents.items():
            for i, act in enumerate(role.actions):
                if act not in ACTIONS:
                    problems.append(
                        f"{cdir / 'permissions.json'}: key 'agents.{_printable(agent)}.actions[{i}]' = {_shown(act)}: "
                        f"unknown action; allowed: {', '.join(sorted(ACTIONS))}"
                    )
    if problems:
        raise ConfigError(problems)
    return Settings(
        config_dir=cdir,
        production=prod,
        warmup=warm,
        permissions=perms,
        spam_terms=spam,
        forbidden_claims=claims,
        customer_exclusions=customers,
        competitor_exclusions=competitors,
    )


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return "sqlite:///.data/alpha.db"
