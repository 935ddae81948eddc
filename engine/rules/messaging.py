"""The messaging pack: templates, personalization guidelines and sequences, validated at load, rendered in a sandbox.

``config/templates/pack.json`` lists the templates (id, kind, sequence, tier, step, delay_days, version, status,
subject inline or from a file, body file, optional fallback opening sentence), the personalization guidelines (the
lead fields a template may read, the subset the LLM may be given, rules for the LLM), the sequences (steps and
delays) and the router's windows. ``load_pack`` validates all of it like the other configuration files (strict
pydantic models; one problem per line naming the file, the key, the value and what is allowed; ``ConfigError``),
then parses every template and refuses, naming the template, its file and the field:

* a lead field the guidelines do not allow (``{{ lead.email }}``, ``{{ lead.score }}``), dynamic or whole-object use
  of ``lead`` (``lead[x]``, ``{% for k in lead %}``, ``lead|attr(...)``), an unknown ``sender`` field;
* any variable other than ``lead``, ``sender``, ``unsubscribe_url`` and ``opening``;
* attribute names starting with ``_`` (``''.__class__``), function or method calls, ``include``/``import``/
  ``extends``/macros, ``for`` loops, ``autoescape`` blocks, arithmetic and ``%`` formatting (``{{ 9 ** 999999999 }}``
  would hang the process), any filter outside ``SAFE_FILTERS`` (``safe`` would turn escaping off, ``center(10**9)``
  would exhaust memory);
* a body without the visible unsubscribe link (``href="{{ unsubscribe_url }}"``) or the postal address
  (``{{ sender.postal_address }}``): in the source, and in what a reader sees of the rendering (not in a comment,
  a script or a branch that never runs);
* a template that cannot render for a lead with no optional field (each ``lead.<field>`` needs a default) or for a
  lead with every field.

Every step of every sequence needs a template for each tier (one for that tier or one with ``"tier": null``);
a (sequence, tier, step) slot holds at most one approved and one draft template (a new version in review).

Rendering (``render``) uses Jinja2's sandbox (``ImmutableSandboxedEnvironment``, a ``SandboxedEnvironment``) with
``StrictUndefined``; the HTML body autoescapes, so neither a template nor a lead value can inject markup. Subjects
and openings are plain text (rendered without HTML escaping, control characters and line breaks removed; the
opening is escaped when the body shows it). The context holds only the lead fields the guidelines allow, and the
``lead`` object records which of them the rendering read: ``Rendered.facts_used`` is the provenance. A lead field
that is empty is undefined (templates write ``{{ lead.first_name | default("there") }}``). The plain-text body is
derived from the rendered HTML (links become ``text (url)``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import Field, ValidationError, model_validator

from engine.core.config import _pydantic_problems, _Strict, default_config_dir, json_object
from engine.rules.guardrails.visibility import VisibilityParser
from engine.rules.guardrails.visibility import analyse as analyse_visibility
from engine.core.errors import AlphaError, ConfigError
from engine.core.statuses import TemplateStatus

PACK_DIR = "templates"
PACK_FILE = "pack.json"

SEQUENCES = ("cold", "warm", "ghost")
KINDS = ("first_touch", "follow_up")
STATUSES = tuple(TemplateStatus)  # a template's review states (engine/core/statuses)
TIERS = (1, 2, 3)
# The lead fields the guidelines may allow at all. Contact data (email, LinkedIn), scores, internal state and free
# form ``data`` can never reach a template or the LLM.
PERSONALIZABLE = ("first_name", "last_name", "title", "company", "company_domain", "industry", "country", "region",
                  "employee_count")
SENDER_FIELDS = ("company_name", "postal_address")
CONTEXT_NAMES = ("lead", "sender", "unsubscribe_url", "opening")

FieldName = Literal["first_name", "last_name", "title", "company", "company_domain", "industry", "country", "region",
                    "employee_count"]
_SEMVER = r"^\d+\.\d+\.\d+$"
_MAX_FACT = 200  # characters of one lead value passed to a template or the LLM
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class RenderError(AlphaError):
    """A template could not be rendered for this lead (names the template and why)."""


# --------------------------------------------------------------------------------------------- pack.json schema

class PersonalizationSpec(_Strict):
    template_fields: list[FieldName] = Field(min_length=1)
    llm_fields: list[FieldName] = []
    llm_rules: list[str] = []
    llm_max_words: int = Field(default=35, ge=5, le=80)

    @model_validator(mode="after")
    def _subset(self):
        extra = [f for f in self.llm_fields if f not in self.template_fields]
        if extra:
            raise ValueError(f"llm_fields {extra} must also be in template_fields (the LLM may only use facts a "
                             f"template may show)")
        return self


class StepSpec(_Strict):
    step: int = Field(ge=1)
    kind: Literal["first_touch", "follow_up"]
    delay_days: int = Field(ge=0, le=365)


class SequenceSpec(_Strict):
    description: str = ""
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self):
        nums = [s.step for s in self.steps]
        if nums != list(range(1, len(nums) + 1)):
            raise ValueError(f"steps must be numbered 1..{len(nums)} in order, found {nums}")
        first = self.steps[0]
        if first.kind != "first_touch" or first.delay_days != 0:
            raise ValueError("step 1 must be the first_touch with delay_days 0")
        for s in self.steps[1:]:
            if s.kind != "follow_up" or s.delay_days < 1:
                raise ValueError(f"step {s.step} must be a follow_up with delay_days of at least 1 "
                                 f"(days after the previous step was sent)")
        return self


class SequencesSpec(_Strict):
    cold: SequenceSpec
    warm: SequenceSpec
    ghost: SequenceSpec


class RoutingSpec(_Strict):
    warm_window_days: int = Field(ge=1, le=3650)
    ghost_after_days: int = Field(ge=1, le=3650)

    @model_validator(mode="after")
    def _order(self):
        if self.ghost_after_days < self.warm_window_days:
            raise ValueError(f"ghost_after_days ({self.ghost_after_days}) must be at least warm_window_days "
                             f"({self.warm_window_days})")
        return self


class TemplateSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    kind: Literal["first_touch", "follow_up"]
    sequence: Literal["cold", "warm", "ghost"]
    tier: Literal[1, 2, 3] | None
    step: int = Field(ge=1)
    delay_days: int | None = Field(default=None, ge=0)
    version: str = Field(pattern=_SEMVER, max_length=32)
    status: Literal["draft", "approved"]
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    subject_file: str | None = None
    body: str = Field(min_length=1)
    opening: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _subject(self):
        if (self.subject is None) == (self.subject_file is None):
            raise ValueError("give exactly one of 'subject' (inline) and 'subject_file'")
        return self


class PackSpec(_Strict):
    version: str = Field(pattern=_SEMVER)
    personalization: PersonalizationSpec
    routing: RoutingSpec
    sequences: SequencesSpec
    templates: list[TemplateSpec] = Field(min_length=1)


# --------------------------------------------------------------------------------------------- loaded pack

@dataclass(frozen=True)
class Guidelines:
    template_fields: tuple[str, ...]
    llm_fields: tuple[str, ...]
    llm_rules: tuple[str, ...]
    llm_max_words: int


@dataclass(frozen=True)
class Step:
    step: int
    kind: str
    delay_days: int


@dataclass(frozen=True)
class SequenceConfig:
    name: str
    steps: tuple[Step, ...]
    description: str = ""

    def get(self, step: int) -> Step | None:
        return next((s for s in self.steps if s.step == step), None)

    @property
    def last_step(self) -> int:
        return self.steps[-1].step


@dataclass(frozen=True)
class RouterConfig:
    warm_window_days: int
    ghost_after_days: int


@dataclass(frozen=True, eq=False)
class Template:
    id: str
    kind: str
    sequence: str
    tier: int | None
    step: int
    delay_days: int
    version: str
    status: str
    body_file: str
    subject_file: str | None
    allowed_fields: tuple[str, ...]      # the guidelines' template_fields: all a rendering may read
    fields: frozenset[str]               # the lead fields the template's sources mention
    uses_opening: bool
    _subject: Any = field(repr=False)
    _html: Any = field(repr=False)
    _opening: Any = field(repr=False)


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


@dataclass(frozen=True)
class Pack:
    path: Path
    version: str
    guidelines: Guidelines
    sequences: Mapping[str, SequenceConfig]
    routing: RouterConfig
    templates: tuple[Template, ...]

    def get(self, template_id: str) -> Template:
        for t in self.templates:
            if t.id == template_id:
                return t
        raise KeyError(f"no template '{template_id}' in {self.path}")

    def sequence(self, name: str) -> SequenceConfig:
        try:
            return self.sequences[name]
        except KeyError:
            raise KeyError(f"unknown sequence '{name}'; known: {', '.join(self.sequences)}") from None

    def template_for(self, sequence: str, tier: int | None, step: int, approved_only: bool = True) -> Template | None:
        """The template for a sequence step and lead tier, or None.

        A template for exactly this tier wins over one for any tier (``tier: null``); among those, the highest
        version. ``approved_only`` leaves out templates whose status is ``draft``. A lead without a tier (not
        scored, or disqualified) only gets a template for any tier.
        """
        cands = [t for t in self.templates if t.sequence == sequence and t.step == step
                 and (t.status == "approved" or not approved_only)]
        for want in ((tier,) if tier is None else (tier, None)):
            hits = [t for t in cands if t.tier == want]
            if hits:
                return max(hits, key=lambda t: (_semver(t.version), t.status == "approved"))
        return None


# --------------------------------------------------------------------------------------------- environments

# The filters a template may use: none of them calls out, turns escaping off (``safe``) or makes output larger
# than its input times a constant (``center(10**9)``, ``indent``, ``wordwrap``, ``format`` and ``replace`` can).
SAFE_FILTERS = ("default", "d", "e", "escape", "upper", "lower", "title", "capitalize", "trim", "striptags",
                "truncate", "length", "count", "string", "first", "last", "wordcount")
# Arithmetic (and % formatting) is refused at load; the environments also refuse it at render time and never fold
# it at compile time, so "{{ 9 ** 999999999 }}" or "{{ 'a' * 10 ** 10 }}" cannot hang or exhaust a process.
ARITHMETIC = frozenset({"+", "-", "*", "/", "//", "%", "**"})


class _MailSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = ARITHMETIC

    def call_binop(self, context, operator, left, right):
        raise SecurityError(f"the operator {operator!r} is not allowed in a template")


def _env(autoescape: bool) -> ImmutableSandboxedEnvironment:
    # No loader: include/import/extends cannot reach any file. Immutable: a template cannot change a value.
    # No globals (range, lipsum, cycler, ...) and only SAFE_FILTERS.
    env = _MailSandbox(autoescape=autoescape, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=False)
    env.globals.clear()
    env.filters = {name: env.filters[name] for name in SAFE_FILTERS}
    return env


# Parses sources for the static checks: it knows every built-in filter, so a disallowed one is reported by name
# (the environments below do not know it at all) rather than as a syntax error. It never renders.
_PARSE_ENV = _MailSandbox(trim_blocks=True, lstrip_blocks=True)
HTML_ENV = _env(True)   # bodies: every value is HTML-escaped
TEXT_ENV = _env(False)  # subjects and openings: plain text (the body escapes the opening when it shows it)


def sandbox(autoescape: bool = True) -> ImmutableSandboxedEnvironment:
    """The environment templates render in (for tests and tools)."""
    return HTML_ENV if autoescape else TEXT_ENV


# --------------------------------------------------------------------------------------------- static checks

_FORBIDDEN_NODES = {
    nodes.Extends: "'extends'", nodes.Include: "'include'", nodes.Import: "'import'",
    nodes.FromImport: "'from ... import'", nodes.Macro: "macros", nodes.CallBlock: "'call' blocks",
    nodes.Call: "function and method calls (use filters instead)",
    nodes.For: "'for' loops (a template shows single facts: there is nothing to loop over)",
    nodes.EvalContextModifier: "'autoescape' blocks (every value is escaped)",
}


def _analyse(source: str, env, allowed: tuple[str, ...]) -> tuple[set[str], set[str], list[str]]:
    """(lead fields used, context names used, problems) of one template source."""
    ast = _PARSE_ENV.parse(source)
    problems: list[str] = []
    fields: set[str] = set()
    # Jinja's variable tracking runs its code generator, which evaluates constant expressions: only once no
    # arithmetic and no filter outside SAFE_FILTERS is left ("{{ 'a' | center(10**9) }}" would be built here).
    risky = any(n.operator in ARITHMETIC for n in ast.find_all(nodes.BinExpr)) or \
        any(n.name not in SAFE_FILTERS for n in ast.find_all(nodes.Filter))
    if risky:
        names = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"}
    else:
        names = set(find_undeclared_variables(ast))
    for n in sorted(names - set(CONTEXT_NAMES)):
        problems.append(f"uses the variable '{n}'; a template may only use {', '.join(CONTEXT_NAMES)}")

    def note(msg: str) -> None:
        if msg not in problems:
            problems.append(msg)

    def walk(node: nodes.Node, parent: nodes.Node | None) -> None:
        for cls, what in _FORBIDDEN_NODES.items():
            if isinstance(node, cls):
                note(f"uses {what}, which the pack does not allow")
        if isinstance(node, nodes.BinExpr) and node.operator in ARITHMETIC:
            note(f"uses the operator '{node.operator}' (line {node.lineno}): a template shows facts, it does not "
                 "compute")
        if isinstance(node, nodes.Filter) and node.name not in SAFE_FILTERS:
            note(f"uses the filter '{node.name}' (line {node.lineno}); allowed: {', '.join(SAFE_FILTERS)}")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            note(f"reads the attribute '{node.attr}': names starting with '_' are not allowed")
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in ("lead", "sender"):
            key = None
            if isinstance(parent, nodes.Getattr) and parent.node is node:
                key = parent.attr
            elif (isinstance(parent, nodes.Getitem) and parent.node is node and isinstance(parent.arg, nodes.Const)
                  and isinstance(parent.arg.value, str)):
                key = parent.arg.value
            if key is None:
                note(f"uses '{node.name}' other than as {node.name}.<field> (line {node.lineno})")
            elif node.name == "lead":
                if key in allowed:
                    fields.add(key)
                else:
                    note(f"uses lead field '{key}', which the personalization guidelines do not allow "
                         f"(personalization.template_fields: {', '.join(allowed)})")
            elif key not in SENDER_FIELDS:
                note(f"uses sender field '{key}'; allowed: {', '.join(SENDER_FIELDS)}")
        for child in node.iter_child_nodes():
            walk(child, node)

    walk(ast, None)
    return fields, names, problems


def _body_compliance(ast_source: str) -> list[str]:
    ast = _PARSE_ENV.parse(ast_source)
    problems = []
    unsub_in_href = re.search(r"""href\s*=\s*["']\s*\{\{-?\s*unsubscribe_url\s*-?\}\}\s*["']""", ast_source)
    if not unsub_in_href:
        problems.append('never shows the unsubscribe link (<a href="{{ unsubscribe_url }}">Unsubscribe</a>)')
    has_addr = any(isinstance(g.node, nodes.Name) and g.node.name == "sender" and g.attr == "postal_address"
                   for g in ast.find_all(nodes.Getattr))
    if not has_addr:
        problems.append("never shows the sender's postal address ({{ sender.postal_address }})")
    return problems


# --------------------------------------------------------------------------------------------- loading

_PROBE_SENDER = {"company_name": "Sender Inc.", "postal_address": "1 Main Street, Springfield"}
_PROBE_UNSUB = "https://unsubscribe.invalid/probe"
_PROBE_LEAD = {f: 250 if f == "employee_count" else f"Probe {f}" for f in PERSONALIZABLE}


def _visible_compliance(html: str) -> list[str]:
    """What a reader sees of a probe rendering (the content rules' visibility model, guardrails/visibility.py):
    the unsubscribe link with visible text, and the postal address, not hidden in a comment, a script, a
    ``display:none`` element, white-on-white text..."""
    v = analyse_visibility(html)
    problems = []
    if not any(a.href.strip() == _PROBE_UNSUB and not a.hidden and " ".join(a.text.split()) for a in v.anchors):
        problems.append("does not visibly show the unsubscribe link "
                        "(<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>)")
    if _PROBE_SENDER["postal_address"] not in " ".join(v.visible.split()):
        problems.append("does not visibly show the sender's postal address ({{ sender.postal_address }})")
    return problems


def _read_template_file(tdir: Path, pack_path: Path, key: str, name: str, problems: list[str]) -> str | None:
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not name.strip() or "\x00" in name:
        problems.append(f"{pack_path}: key '{key}' = {json.dumps(name)}: must be a file name inside {tdir}")
        return None
    path = tdir / rel
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{pack_path}: key '{key}' = {json.dumps(name)}: file {path} is missing")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{pack_path}: key '{key}' = {json.dumps(name)}: file {path} cannot be read ({e})")
    return None


def load_pack(config_dir: str | Path | None = None) -> Pack:
    """Load and validate ``<config_dir>/templates/pack.json`` and its template files; ConfigError lists every
    problem."""
    cdir = Path(config_dir) if config_dir else default_config_dir()
    tdir = cdir / PACK_DIR
    path = tdir / PACK_FILE
    problems: list[str] = []
    data = json_object(path, problems)
    if data is None:
        raise ConfigError(problems)
    try:
        spec = PackSpec.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_pydantic_problems(path, data, e, PackSpec)) from None

    allowed = tuple(dict.fromkeys(spec.personalization.template_fields))
    seqs = {name: getattr(spec.sequences, name) for name in SEQUENCES}
    templates: list[Template] = []
    seen_ids: dict[str, int] = {}
    slots: dict[tuple, str] = {}
    for i, t in enumerate(spec.templates):
        where = f"templates[{i}]"
        label = f"{path}: template '{t.id}'"
        if t.id in seen_ids:
            problems.append(f"{path}: key '{where}.id' = {json.dumps(t.id)}: "
                            f"already used by templates[{seen_ids[t.id]}]")
            continue
        seen_ids[t.id] = i
        seq_step = seqs[t.sequence].steps[t.step - 1] if t.step <= len(seqs[t.sequence].steps) else None
        if seq_step is None:
            problems.append(f"{path}: key '{where}.step' = {t.step}: sequence '{t.sequence}' has steps "
                            f"1..{len(seqs[t.sequence].steps)}")
            continue
        if t.kind != seq_step.kind:
            problems.append(f"{path}: key '{where}.kind' = {json.dumps(t.kind)}: step {t.step} of sequence "
                            f"'{t.sequence}' is a {seq_step.kind}")
        if t.delay_days is not None and t.delay_days != seq_step.delay_days:
            problems.append(f"{path}: key '{where}.delay_days' = {t.delay_days}: sequence '{t.sequence}' waits "
                            f"{seq_step.delay_days} days before step {t.step} (sequences.{t.sequence}.steps)")
        slot = (t.sequence, t.tier, t.step, t.status)
        if slot in slots:
            problems.append(f"{path}: key '{where}.id' = {json.dumps(t.id)}: template '{slots[slot]}' already is "
                            f"the {t.status} template for sequence '{t.sequence}', tier {t.tier}, step {t.step} "
                            f"(at most one draft and one approved template per slot)")
        slots[slot] = t.id

        sources: list[tuple[str, str, str, Any]] = []  # (key, file label, source, env)
        if t.subject_file is not None:
            src = _read_template_file(tdir, path, f"{where}.subject_file", t.subject_file, problems)
            if src is not None:
                sources.append((f"{where}.subject_file", t.subject_file, src.strip(), TEXT_ENV))
        elif t.subject is not None:  # always, when there is no subject_file (the spec requires exactly one)
            sources.append((f"{where}.subject", "inline subject", t.subject, TEXT_ENV))
        body = _read_template_file(tdir, path, f"{where}.body", t.body, problems)
        if body is not None:
            sources.append((f"{where}.body", t.body, body, HTML_ENV))
        if t.opening is not None:
            sources.append((f"{where}.opening", "inline opening", t.opening, TEXT_ENV))
        if body is None or len(sources) < (3 if t.opening is not None else 2):
            continue

        compiled: dict[str, Any] = {}
        used_fields: set[str] = set()
        body_names: set[str] = set()
        ok = True
        for key, label_file, src, env in sources:
            try:
                f, names, probs = _analyse(src, env, allowed)
            except TemplateSyntaxError as e:
                problems.append(f"{label} ({label_file}), key '{key}': template syntax error at line {e.lineno}: "
                                f"{e.message}")
                ok = False
                continue
            if key.endswith(".opening") and "opening" in names:
                probs.append("the opening cannot use {{ opening }} itself")
            if key.endswith(".subject") or key.endswith(".subject_file"):
                if "opening" in names:
                    probs.append("a subject cannot use {{ opening }}")
            if key.endswith(".body"):
                body_names = names
                probs.extend(_body_compliance(src))
            for p in probs:
                problems.append(f"{label} ({label_file}), key '{key}': {p}")
            ok = ok and not probs
            used_fields |= f
            if probs:
                continue
            try:
                compiled[key.rsplit(".", 1)[1]] = env.from_string(src)
            except TemplateSyntaxError as e:  # e.g. an unknown test; TemplateAssertionError is one
                problems.append(f"{label} ({label_file}), key '{key}': template syntax error at line {e.lineno}: "
                                f"{e.message}")
                ok = False
        uses_opening = "opening" in body_names
        if uses_opening and t.opening is None:
            problems.append(f"{label} ({t.body}), key '{where}.opening': the body shows {{{{ opening }}}}, so the "
                            f"template needs an 'opening' (the sentence used when no LLM writes one)")
            ok = False
        if not ok:
            continue
        tpl = Template(
            id=t.id, kind=t.kind, sequence=t.sequence, tier=t.tier, step=t.step, delay_days=seq_step.delay_days,
            version=t.version, status=t.status, body_file=t.body, subject_file=t.subject_file,
            allowed_fields=allowed, fields=frozenset(used_fields), uses_opening=uses_opening,
            _subject=compiled.get("subject") or compiled.get("subject_file"), _html=compiled["body"],
            _opening=compiled.get("opening"),
        )
        # it must render for a lead with nothing but an email address (every field needs a default) and for one
        # with every field, and each rendering must visibly show the unsubscribe link and the postal address
        # (not only in a comment, or a branch that never runs)
        probe_problems = []
        for who, lead in (("a lead without optional fields", {}), ("a lead with every field", _PROBE_LEAD)):
            try:
                out = render(tpl, lead, _PROBE_SENDER, _PROBE_UNSUB)
            except RenderError as e:
                probe_problems.append(f"cannot render for {who}: {str(e).split(': ', 1)[-1]}")
                break
            probe_problems += [f"{p} when rendered for {who}" for p in _visible_compliance(out.html)]
        for p in dict.fromkeys(probe_problems):
            problems.append(f"{label} ({t.body}), key '{where}': {p}")
        if probe_problems:
            continue
        templates.append(tpl)

    # every step of every sequence has a template for every tier (drafts count: they are being written)
    if not problems:
        for name, seq in seqs.items():
            for st in seq.steps:
                have = {t.tier for t in templates if t.sequence == name and t.step == st.step}
                missing = [tier for tier in TIERS if tier not in have and None not in have]
                if missing:
                    problems.append(f"{path}: key 'templates': no template for sequence '{name}' step {st.step} and "
                                    f"tier {', '.join(map(str, missing))} (add one for that tier or one with "
                                    f"\"tier\": null)")
    if problems:
        raise ConfigError(problems)
    pers = spec.personalization
    return Pack(
        path=path, version=spec.version,
        guidelines=Guidelines(allowed, tuple(dict.fromkeys(pers.llm_fields)), tuple(pers.llm_rules),
                              pers.llm_max_words),
        sequences={name: SequenceConfig(name, tuple(Step(s.step, s.kind, s.delay_days) for s in sq.steps),
                                        sq.description) for name, sq in seqs.items()},
        routing=RouterConfig(spec.routing.warm_window_days, spec.routing.ghost_after_days),
        templates=tuple(templates),
    )


# --------------------------------------------------------------------------------------------- rendering

def clean_text(value: Any, limit: int = _MAX_FACT) -> str:
    """One line of plain text: control characters and line breaks removed, white space collapsed, cut at limit."""
    s = " ".join(_CONTROL.sub(" ", str(value)).split())
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def _read(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def lead_facts(lead: Any, fields: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The lead's values for ``fields`` (a Lead row, any object or a mapping); empty values are left out."""
    out: dict[str, Any] = {}
    for f in fields:
        v = _read(lead, f)
        if v is None or isinstance(v, bool):
            continue
        if isinstance(v, int):
            out[f] = v
            continue
        s = clean_text(v)
        if s:
            out[f] = s
    return out


class _Record:
    """What a template sees as ``lead`` or ``sender``: only the given keys, no attributes or methods.

    Jinja's sandbox resolves ``lead.x`` as ``lead["x"]`` here (there is no attribute ``x``), so every read goes
    through ``__getitem__``, which records it. Anything else (``lead._values``) is refused by the sandbox.
    """

    __slots__ = ("_values", "_used")

    def __init__(self, values: Mapping[str, Any], used: dict[str, Any] | None = None):
        self._values = dict(values)
        self._used = used

    def __getitem__(self, key):
        if not isinstance(key, str) or key not in self._values:
            raise KeyError(key)
        v = self._values[key]
        if self._used is not None:
            self._used[key] = v
        return v

    def __str__(self) -> str:
        return ""

    __repr__ = __str__


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    facts_used: dict[str, Any]
    opening: str | None = None


def render_opening(template: Template, lead: Any, sender: Any, used: dict | None = None) -> str | None:
    """The template's own opening sentence for this lead (plain text), or None when it has none."""
    if template._opening is None:
        return None
    ctx = _context(template, lead, sender, "", used if used is not None else {})
    return clean_text(_run(template, template._opening, ctx, "opening"), 1000)


def _context(template: Template, lead: Any, sender: Any, unsubscribe_url: str, used: dict) -> dict:
    facts = lead_facts(lead, template.allowed_fields)
    snd = {k: clean_text(_read(sender, k) or "", 500) for k in SENDER_FIELDS}
    return {"lead": _Record(facts, used), "sender": _Record({k: v for k, v in snd.items() if v}),
            "unsubscribe_url": unsubscribe_url}


def _run(template: Template, compiled, ctx: dict, part: str) -> str:
    try:
        return compiled.render(ctx)
    except SecurityError as e:
        raise RenderError(f"template '{template.id}' ({part}): refused by the sandbox: {e}") from None
    except UndefinedError as e:
        m = re.search(r"_Record object' has no attribute '([^']+)'", str(e))
        what = f"the lead has no '{m.group(1)}'" if m else str(e)
        raise RenderError(f"template '{template.id}' ({part}): {what}, which the template shows without a default "
                          f"(write {{{{ lead.<field> | default(\"...\") }}}})") from None
    except (TypeError, ValueError, LookupError, ArithmeticError, RecursionError, MemoryError) as e:
        raise RenderError(f"template '{template.id}' ({part}): {type(e).__name__}: {str(e)[:200]}") from None


def one_stop(out: str, values, escaped: bool = False) -> str:
    """A value that ends with a full stop ("Acme Inc.") inserted before the template's own full stop reads
    "Acme Inc.."; keep one. Only right after such a value, and never an ellipsis ("..." stays). ``escaped``: the
    output is HTML, where the values appear as the template's autoescape wrote them."""
    from markupsafe import escape

    stops = sorted({v for v in values if isinstance(v, str) and v.endswith(".") and not v.endswith("..")},
                   key=len, reverse=True)
    for v in stops:
        form = str(escape(v)) if escaped else v
        out = re.sub(re.escape(form) + r"\.(?!\.)", lambda m: m.group(0)[:-1], out)  # the value, its stop dropped
    return out


def render(template: Template, lead: Any, sender: Any, unsubscribe_url: str, *, opening: str | None = None) -> Rendered:
    """Render a template for a lead.

    ``sender`` is ``settings.production.sender`` (or anything with ``company_name`` and ``postal_address``);
    ``unsubscribe_url`` the recipient's signed link. ``opening``: a sentence to show instead of the template's own
    opening (the LLM's); ignored when the body has no ``{{ opening }}``.
    """
    if not isinstance(unsubscribe_url, str) or not unsubscribe_url:
        raise RenderError(f"template '{template.id}': an unsubscribe URL is required")
    used: dict[str, Any] = {}
    ctx = _context(template, lead, sender, unsubscribe_url, used)
    inserted = [*lead_facts(lead, template.allowed_fields).values(), *ctx["sender"]._values.values()]
    subject = one_stop(clean_text(_run(template, template._subject, ctx, "subject"), 300), inserted)
    shown = None
    if template.uses_opening:
        shown = clean_text(opening, 1000) if opening is not None else render_opening(template, lead, sender, used)
        shown = one_stop(shown, inserted) if shown is not None else None
        ctx["opening"] = shown
    html = one_stop(_run(template, template._html, ctx, "body").strip(), [*inserted, shown], escaped=True) + "\n"
    return Rendered(subject=subject, html=html, text=html_to_plain(html), facts_used=dict(sorted(used.items())),
                    opening=shown)


# --------------------------------------------------------------------------------------------- html -> text

_BLOCK = {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote"}


class _Plain(VisibilityParser):
    """The text a reader sees (the content rules' visibility model: nothing hidden comes through), laid out."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self.link: tuple[str, list[str], bool] | None = None

    def on_start(self, tag, attrs, state):
        if state.sticky:
            return
        if tag == "br":
            self.out.append("\n")
        elif tag in _BLOCK:
            self.out.append("\n\n")
        elif tag == "a":
            self.link = (attrs.get("href") or "", [], state.opacity < 0.1)

    def on_pop(self, tag):
        if tag in _BLOCK:
            self.out.append("\n\n")
        elif tag == "a" and self.link is not None:
            href, parts, hidden = self.link
            self.link = None
            if hidden:
                return
            text = " ".join("".join(parts).split())
            if href and href != text:
                self.out.append(f"{text} ({href})" if text else href)
            else:
                self.out.append(text)

    def on_text(self, data, hidden):
        if hidden:
            return
        data = re.sub(r"\s+", " ", data)  # source line breaks are white space in HTML; <br> and blocks break lines
        if self.link is not None:
            self.link[1].append(data)
        else:
            self.out.append(data)


def html_to_plain(html: str) -> str:
    """A readable plain-text version of an HTML email body: what a reader of the HTML sees."""
    p = _Plain()
    p.run(html)
    raw = "".join(p.out)
    lines = [" ".join(line.split()) for line in raw.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text + "\n"
