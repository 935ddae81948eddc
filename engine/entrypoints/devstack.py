"""`alpha dev`, what `make run` runs: the whole loop on this machine, bound to 127.0.0.1, supervised.

    alpha dev [--assisted] [--console-port 8501] [--ghl-port 8765] [--webhook-port 8787]

1. Every port is checked BEFORE anything starts; a busy one is refused with one message naming the port, the
   part that wanted it and the option that picks another (nothing is started, the database is not touched).
   Then, also before anything starts: one `alpha dev` per data folder (a second one would re-key the demo password
   the first printed), and only on an empty database or one of demo leads (a DATABASE_URL in .env pointing at a
   real deployment is refused: demo users and a worker never run over real leads).
2. Preparation, in order, as the CLI would do it: `alpha init` (gated), `alpha demo` (the demo leads into an empty
   database, a shadow run, a blind-review set for the AE; with ``--assisted`` the step into the assisted phase and
   a daily run, so the approval queue has work), then the demo users (``ae``, ``approver``, ``ops``, ``admin``)
   with ALPHA_DEMO_PASSWORD or a strong generated password, in the demo users file only.
3. Four parts, each a child process in its own process group, each logging to ``$ALPHA_DATA_DIR/logs/<part>.log``:
   the local GHL sandbox, the webhook receiver, the worker (executes what is approved) and the console
   (Streamlit, demo mode). They all get the same environment: GHL pointed at the sandbox (credentials from the
   environment or .env are overridden, so nothing can reach a real inbox), every other outside setting empty
   (OUTSIDE_SETTINGS: Slack, the LLM keys, an audit checkpoint destination; one line names those that were set),
   ALPHA_WEBHOOK_URL = the receiver this stack serves, ALPHA_DEMO=1 and the demo password. A stop signal during
   the preparation stops the step that runs and starts nothing; a demo whose shadow run was interrupted gets it on
   the next run (`alpha demo` alone does the same).
4. It waits until each part answers (the console's /_stcore/health, the receiver's /healthz, the sandbox's
   /_sandbox/faults, the worker's start line) and prints one block: URLs, users, password, "Ctrl-C stops
   everything".
5. Then it watches: when any part exits, it prints which one, its exit code and the last lines of its log, stops
   the others and exits non-zero. Ctrl-C or SIGTERM stops every part and exits 0.

``--assisted`` runs with a demo copy of the configuration (``$ALPHA_DATA_DIR/demo-config``) whose email flags allow
sends and whose working hours are every hour of every day, so an approval is executed at once, into the sandbox.
The step into assisted goes through the go/no-go gate; where the gate cannot pass on demo data it is a recorded
override whose reason says it is a demo, and only on a demo database (every lead at a reserved example domain).

Headless: no streamlit import here (the console is started as a process).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

from engine.core.errors import AlphaError, InvalidRequest
from engine.entrypoints.console_server import console_argv, require_console

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONSOLE_PORT, DEFAULT_GHL_PORT, DEFAULT_WEBHOOK_PORT = 8501, 8765, 8787
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
TAIL_LINES = 30
READY_MARK = "Ctrl-C stops everything."
SANDBOX_TOKEN = "sandbox-token"
# RFC 2606 / RFC 6761: names that can never be a real inbox
RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost")
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
DEMO_REASON = "demo: `alpha demo --assisted` on demo data (every lead at a reserved example domain)"


class PortBusy(AlphaError):
    exit_code = 2


class StackFailed(AlphaError):
    pass


# ------------------------------------------------------------------------------------------ the parts

@dataclass
class Part:
    """One child process of the stack."""

    name: str
    argv: list[str]
    port: int | None = None
    option: str | None = None      # the `alpha dev` option that picks the port (for the busy-port message)
    health: str | None = None      # a URL that answers 200 once the part is ready
    ready_text: str | None = None  # or: a line the part writes to its log once ready
    url: str | None = None         # shown in the ready block
    proc: subprocess.Popen | None = field(default=None, repr=False)
    log_path: Path | None = None
    _log: TextIO | None = field(default=None, repr=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.entrypoints.cli", *args]


def stack_parts(console_port: int, ghl_port: int, webhook_port: int, worker_interval: float = 1.0) -> list[Part]:
    """The four parts, every one bound to 127.0.0.1. Started in this order, stopped in the reverse."""
    ghl, hooks, console = (f"http://{HOST}:{p}" for p in (ghl_port, webhook_port, console_port))
    return [
        Part("ghl-sandbox", _cli("sandbox", "ghl", "--host", HOST, "--port", str(ghl_port)), ghl_port,
             "--ghl-port", health=f"{ghl}/_sandbox/faults", url=ghl),
        Part("webhooks", _cli("webhooks", "serve", "--host", HOST, "--port", str(webhook_port)), webhook_port,
             "--webhook-port", health=f"{hooks}/healthz", url=hooks),
        Part("worker", _cli("worker", "--interval", str(worker_interval)), ready_text="worker started"),
        Part("console", console_argv(HOST, console_port),
             console_port, "--console-port", health=f"{console}/_stcore/health", url=console),
    ]


# Settings (every variable of .env.example was checked) that make a part reach a service outside this machine, or
# write where a deployment keeps its evidence, and that the demo stack therefore gives every part EMPTY:
OUTSIDE_SETTINGS = {
    # hot-lead alerts and the SLA escalations of the demo's approvals would post to a real Slack channel
    "SLACK_WEBHOOK_URL": "a real Slack channel",
    # drafting with the LLM (console redrafts, a reply's second opinion) would spend the account's credit on demo
    # leads; without a key the template renderer drafts offline
    "ANTHROPIC_API_KEY": "an Anthropic account",
    "OPENAI_API_KEY": "an OpenAI account",
    # the worker's signed checkpoints of the DEMO audit chain would be POSTed to the deployment's anchor service (an
    # http(s) URL) or appended to its checkpoint file, where they would not match its chain; the demo's go to
    # $ALPHA_DATA_DIR/audit-checkpoints.jsonl
    "ALPHA_AUDIT_CHECKPOINTS": "a deployment's audit checkpoint store",
}
# Replaced rather than emptied (see child_env): GHL goes to the local sandbox.
SANDBOXED_SETTINGS = ("GHL_API_KEY", "GHL_LOCATION_ID", "GHL_BASE_URL")
# Checked and left as they are: DATABASE_URL (refused when it holds real leads: stack_database_problem),
# GHL_WEBHOOK_PUBLIC_KEY, GHL_WEBHOOK_ED25519_PUBLIC_KEY, RB2B_WEBHOOK_SECRET and ALPHA_METRICS_TOKEN (they only
# check what reaches this stack's own receiver, on 127.0.0.1), the *_MODEL, *_BASE_URL and *_RPM of the LLM
# providers (nothing is called without a key), ALPHA_REPLY_SECOND_OPINION (asks the LLM: no key, no call),
# ALPHA_WEBHOOK_URL (set to this stack's receiver), ALPHA_USERS_FILE (removed: demo users only in the demo file),
# EMERGENCY_STOP (a person's stop is kept), and the compose-only POSTGRES_PASSWORD, ALPHA_WORKERS, ALPHA_DAILY_*.


def ignored_settings(base: dict) -> list[str]:
    """The outside settings set (non-empty) in ``base`` that the demo stack does not use: blanked or, for GHL,
    pointed at the local sandbox. A GHL_BASE_URL already on this machine is not counted."""
    names = [k for k in OUTSIDE_SETTINGS if str(base.get(k) or "").strip()]
    if str(base.get("GHL_API_KEY") or "").strip() and not _loopback(str(base.get("GHL_BASE_URL") or "")):
        names += [k for k in SANDBOXED_SETTINGS if str(base.get(k) or "").strip()]
    return names


def ignored_line(names: list[str]) -> str | None:
    """The one line `alpha dev` prints about the outside settings it ignores (None: none was set)."""
    if not names:
        return None
    blank = [k for k in names if k in OUTSIDE_SETTINGS]
    ghl = [k for k in names if k in SANDBOXED_SETTINGS]
    said = []
    if blank:
        said.append(", ".join(blank) + " (every part sees them empty)")
    if ghl:
        said.append(", ".join(ghl) + " (every send goes to the local GHL sandbox)")
    return ("alpha dev: outside settings from the environment or .env ignored for the demo, so nothing reaches an "
            "outside service: " + "; ".join(said))


def child_env(base: dict, *, ghl_port: int, webhook_port: int, password: str,
              config_dir: str | Path | None = None) -> dict:
    """The one environment every part gets, so they agree on where the sandbox and the receiver are."""
    from engine.adapters.ghl_sandbox import DEFAULT_LOCATION

    env = dict(base)
    env.pop("ALPHA_USERS_FILE", None)  # demo users only ever go to the demo users file
    env.update({
        "PYTHONUNBUFFERED": "1",
        "ALPHA_DEMO": "1",
        "ALPHA_DEMO_PASSWORD": password,
        "ALPHA_WEBHOOK_URL": f"http://{HOST}:{webhook_port}",
        # the environment wins over .env (engine.app.load_env_file never overrides): real GHL credentials in .env
        # are not used by this stack; every send goes to the local sandbox
        "GHL_API_KEY": SANDBOX_TOKEN,
        "GHL_LOCATION_ID": DEFAULT_LOCATION,
        "GHL_BASE_URL": f"http://{HOST}:{ghl_port}",
        # every other setting that reaches an outside service is blank (OUTSIDE_SETTINGS: Slack, the LLM keys, an
        # audit checkpoint destination); an empty value is kept by load_env_file, so the .env value is not used
        # either
        **{name: "" for name in OUTSIDE_SETTINGS},
    })
    if config_dir is not None:
        env["ALPHA_CONFIG_DIR"] = str(config_dir)
    pypath = env.get("PYTHONPATH", "")
    if str(ROOT) not in pypath.split(os.pathsep):  # `python -m engine.entrypoints.cli` from any working directory
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + pypath if pypath else "")
    return env


# ------------------------------------------------------------------------------------------ ports

def port_user(port: int, host: str = HOST) -> str | None:
    """Where something already listens on (or holds) ``port`` of this machine's loopback: ``host`` itself, or, for
    the IPv4 loopback, the IPv6 one too (a program on [::1] or an IPv6-only [::] only: a browser resolves
    ``localhost`` to ::1 first, so ``localhost:PORT`` would reach that program, not the part). None when free."""
    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex((host, port)) == 0:
            return host
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return host
    if host not in ("127.0.0.1", "localhost") or not socket.has_ipv6:
        return None
    try:
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:  # no IPv6 on this machine: nothing can listen there
        return None
    with v6:
        v6.settimeout(0.5)
        try:
            if v6.connect_ex(("::1", port)) == 0:
                return "[::1]"
        except OSError:  # no IPv6 loopback address
            return None
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as v6:
        v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            v6.bind(("::1", port))
        except OSError as e:
            import errno

            return "[::1]" if e.errno == errno.EADDRINUSE else None
    return None


def port_free(port: int, host: str = HOST) -> bool:
    """Nothing listens on host:port (nor, for 127.0.0.1, on [::1]:port) and a server could bind it (as the parts
    do, with SO_REUSEADDR)."""
    return port_user(port, host) is None


def check_ports(parts: list[Part], host: str = HOST) -> None:
    """Refuse, before anything starts, a port given twice or already in use."""
    seen: dict[int, Part] = {}
    for p in parts:
        if p.port is None:
            continue
        if p.port in seen:
            other = seen[p.port]
            raise PortBusy(f"port {p.port} is given to both {other.name} ({other.option}) and {p.name} "
                           f"({p.option}); nothing was started. Give each its own port.")
        seen[p.port] = p
        where = port_user(p.port, host)
        if where is None:
            continue
        v6 = "" if where == host else (f" (on the IPv6 loopback {where}: a browser opening localhost:{p.port} "
                                       "would reach that program, not this one)")
        raise PortBusy(
            f"port {p.port} on {where} (for the {p.name}) is already in use{v6}, so nothing was started. "
            f"Stop what runs there (an earlier `make run`? `ss -ltnp 'sport = :{p.port}'` shows the program), "
            f"or choose another port: alpha dev {p.option} PORT, or make run RUN_ARGS='{p.option} PORT'.")


# ------------------------------------------------------------------------------------------ supervisor

def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """In the child: a process group of its own, and SIGTERM if the supervisor dies (Linux)."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the supervisor's own handlers still stop the parts
        pass


def tail(path: Path | None, n: int = TAIL_LINES) -> list[str]:
    if path is None or not path.is_file():
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()[-n:]


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"exit code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"exit code {code}"
    return f"exit code {code}"


class Supervisor:
    """Starts parts, waits until each answers, watches them; any exit stops all (exit 1), a signal stops all (0)."""

    def __init__(self, parts: list[Part], env: dict, log_dir: str | Path, *, cwd: str | Path | None = None,
                 out: TextIO | None = None, err: TextIO | None = None, ready_timeout: float = READY_TIMEOUT,
                 poll: float = 0.2, stop_timeout: float = STOP_TIMEOUT):
        self.parts, self.env = parts, env
        self.log_dir = Path(log_dir)
        self.cwd = str(cwd or os.getcwd())
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.ready_timeout, self.poll, self.stop_timeout = ready_timeout, poll, stop_timeout
        self.stop_signal: int | None = None

    # -- lifecycle
    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for p in self.parts:
            p.log_path = self.log_dir / f"{p.name}.log"
            p._log = open(p.log_path, "w", encoding="utf-8")
            p.proc = subprocess.Popen(p.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=p._log,
                                      stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def _answers(self, p: Part) -> bool:
        if p.health:
            try:
                with urllib.request.urlopen(p.health, timeout=1.0) as r:
                    return r.status == 200
            except (OSError, ValueError):
                return False
        if p.ready_text:
            return any(p.ready_text in line for line in tail(p.log_path, 200))
        return True

    def _exited(self) -> Part | None:
        return next((p for p in self.parts if p.proc is not None and p.proc.poll() is not None), None)

    def wait_ready(self) -> Part | None:
        """None once every part answers; else the part that exited or did not answer in time (its
        ``proc.returncode`` is None when it timed out)."""
        deadline = time.monotonic() + self.ready_timeout
        pending = list(self.parts)
        while pending:
            if self.stop_signal is not None:
                return None
            dead = self._exited()
            if dead is not None:
                return dead
            pending = [p for p in pending if not self._answers(p)]
            if not pending:
                return None
            if time.monotonic() > deadline:
                return pending[0]
            time.sleep(self.poll)
        return None

    def watch(self) -> Part | None:
        """Until a part exits (returned) or a stop signal arrives (None)."""
        while self.stop_signal is None:
            dead = self._exited()
            if dead is not None:
                return dead
            time.sleep(self.poll)
        return None

    def stop(self) -> list[str]:
        """SIGTERM every running part's process group (reverse start order), then SIGKILL what is left."""
        running = [(p.name, p.proc) for p in reversed(self.parts) if p.proc is not None and p.proc.poll() is None]
        for _, proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for _, proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        for p in self.parts:  # anything a part left behind in its group
            if p.proc is not None:
                _signal_group(p.proc, signal.SIGKILL)
            if p._log is not None:
                p._log.close()
                p._log = None
        return [name for name, _ in running]

    def _report(self, p: Part, timed_out: bool) -> None:
        code = p.proc.returncode if p.proc is not None else None  # None: it has not exited (it timed out)
        if timed_out or code is None:
            what = f"did not answer within {self.ready_timeout:.0f} s" + (f" ({p.health})" if p.health else "")
        else:
            what = f"exited with {_exit_text(code)}"
        print(f"\nalpha dev: the {p.name} {what}; stopping everything.", file=self.err, flush=True)
        lines = tail(p.log_path)
        if lines:
            print(f"last lines of {p.log_path}:", file=self.err)
            for line in lines:
                print(f"  | {line}", file=self.err)
        print(f"alpha dev: stopped because the {p.name} {'did not start' if timed_out else 'exited'} "
              f"({'timeout' if timed_out or code is None else _exit_text(code)}).", file=self.err, flush=True)

    def run(self, banner: Callable[[], str] | None = None) -> int:
        """Start, wait, print the banner, watch; stop everything at the end. 0 after Ctrl-C/SIGTERM, 1 when a
        part failed."""
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.getsignal(s) for s in handled}

        def on_signal(signum, _frame):
            self.stop_signal = signum

        for s in handled:
            signal.signal(s, on_signal)
        failed: Part | None = None
        try:
            self.start()
            failed = self.wait_ready()
            if failed is None and self.stop_signal is None:
                if banner is not None:
                    print(banner(), file=self.out, flush=True)
                failed = self.watch()
            if failed is not None:
                self._report(failed, timed_out=failed.proc is None or failed.proc.poll() is None)
        finally:
            for s in handled:  # a second Ctrl-C while stopping is ignored: the stop finishes
                signal.signal(s, signal.SIG_IGN)
            stopped = self.stop()
            for s, h in previous.items():
                signal.signal(s, h)
        if failed is not None:
            return 1
        name = signal.Signals(self.stop_signal).name if self.stop_signal else "stop"
        print(f"\nalpha dev: {name}: stopped " + (", ".join(stopped) or "nothing (every part had exited)") + ".",
              file=self.out, flush=True)
        return 0


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # each part leads its own group (setsid in _die_with_parent)


# ------------------------------------------------------------------------------------------ the demo

def is_reserved_address(email: str | None) -> bool:
    domain = (email or "").rsplit("@", 1)[-1].strip().lower().rstrip(".")
    return bool(domain) and (domain.endswith(RESERVED_SUFFIXES) or domain in RESERVED_DOMAINS
                             or any(domain.endswith("." + d) for d in RESERVED_DOMAINS))


def _lead_emails(app) -> list:
    from sqlmodel import select

    from engine.adapters.models import Lead

    with app.store.read() as s:
        return list(s.exec(select(Lead.email)).all())


def demo_database_problem(app) -> str | None:
    """None when this database holds demo data only (leads, every one at a reserved example domain, so no send
    can reach a person); else why it is not a demo database."""
    emails = _lead_emails(app)
    if not emails:
        return "it holds no leads (run `alpha demo` first)"
    real = [e for e in emails if not is_reserved_address(e)]
    if real:
        return (f"{len(real)} of its {len(emails)} leads are at real domains (e.g. {real[0]}): the demo step into "
                "assisted runs only on a database of demo leads (every address at an .example domain)")
    return None


def stack_database_problem(env: dict) -> str | None:
    """Why `alpha dev` must not run on the database of ``env`` (None: empty, not initialised, or demo leads only).

    The stack is a demo: demo users with a printed password administer it, and its worker executes what the
    database has approved into the local sandbox (a real approved send would be marked sent and never reach its
    person). So a database holding any lead at a real domain (DATABASE_URL from the environment or .env pointing
    at a real deployment) is refused before anything starts. A database that cannot be read here is left to
    `alpha init`, which names the problem."""
    try:
        with _environ(env):
            from engine.app import App

            app = App()
    except AlphaError:
        raise
    except Exception:  # noqa: BLE001 - `alpha init` reports an unreadable configuration or database
        return None
    try:
        try:
            emails = _lead_emails(app)
        except Exception:  # noqa: BLE001 - no schema yet (a new database): `alpha init` creates it
            return None
        real = [e for e in emails if not is_reserved_address(e)]
        if not real:
            return None
        return (f"the database {app.store.display_url} (DATABASE_URL, from the environment or .env) holds "
                f"{len(real)} leads at real domains (of {len(emails)}; e.g. {real[0]}). `make run` is a demo: its "
                "demo users (printed password) would administer this database and its worker would execute what "
                "it has approved into the local sandbox, never to the person. It runs only on an empty database or "
                "one of demo leads (every address at an .example domain), so nothing was started. Unset "
                "DATABASE_URL (the default is .data/alpha.db) or point it at another database.")
    finally:
        app.store.dispose()


def shadow_missing(app) -> int:
    """How many leads a demo database holds without a finished shadow run (0: none missing, or not a demo
    database). An interrupted first `alpha demo` (Ctrl-C during its shadow run) leaves the demo leads loaded and no
    finished run; `alpha demo` and `make run` then make that shadow run (once: a finished one is never repeated,
    and the leads are not loaded again)."""
    from sqlmodel import col, select

    from engine.adapters.models import ShadowRun

    if demo_database_problem(app) is not None:
        return 0
    with app.store.read() as s:
        done = s.exec(select(ShadowRun.id).where(col(ShadowRun.finished_at).is_not(None)).limit(1)).first()
    return 0 if done is not None else len(_lead_emails(app))


def demo_shadow_missing(env: dict) -> int:
    """``shadow_missing`` on the database of ``env`` (as the stack's parts will see it)."""
    with _environ(env):
        from engine.app import App

        app = App()
    try:
        return shadow_missing(app)
    finally:
        app.store.dispose()


def ensure_review_set(app, size: int = 50, actor: str = "alpha demo") -> tuple[dict | None, int | None]:
    """A blind-review set for the AE, unless one exists: (new set, None) or (None, existing set id)."""
    from engine.services.blind_review import generate, latest_set

    existing = latest_set(app)
    if existing is not None:
        return None, existing
    return generate(app, size, seed=13, actor=actor), None


def check_assisted_demo(app) -> None:
    """Refuse the assisted demo unless the configuration lets assisted send and GHL is the local sandbox (or not
    configured); checked before anything is loaded."""
    from engine.services.control import live_sending_allowed

    if not live_sending_allowed("assisted", app.settings):
        eb = app.settings.production.email_behavior
        raise InvalidRequest(
            "the assisted demo needs a configuration that lets assisted send (email_behavior.actually_send=true, "
            f"shadow_mode=false; this one has {str(eb.actually_send).lower()}/{str(eb.shadow_mode).lower()}). "
            "Run it with `make run DEMO=assisted` (or `alpha dev --assisted`): it uses a demo copy of the "
            "configuration that sends only to the local GHL sandbox.")
    base = os.environ.get("GHL_BASE_URL", "")
    if os.environ.get("GHL_API_KEY") and not _loopback(base):
        raise InvalidRequest("GHL credentials for a real account are set (GHL_API_KEY, GHL_BASE_URL "
                             f"{base or 'default'}): the assisted demo runs only against the local GHL sandbox "
                             "(`make run DEMO=assisted` points every part at it)")


def step_into_assisted(app, actor: str, say: Callable[[str], None] = print) -> list[dict]:
    """Move the rollout up to assisted one gated step at a time (ControlPlane.set_phase). A gate that cannot
    pass on demo data is overridden with force=True and a reason that says it is a demo (audited). Refused
    unless this is a demo database and the configuration lets assisted send."""
    from engine.core.config import PHASES
    from engine.core.errors import PhaseChangeRefused

    check_assisted_demo(app)
    problem = demo_database_problem(app)
    if problem:
        raise InvalidRequest(f"not a demo database: {problem}")
    current = app.control.state().phase
    target = PHASES.index("assisted")
    if PHASES.index(current) >= target:
        say(f"demo: the rollout phase is already {current}")
        return []
    steps = []
    for phase in PHASES[PHASES.index(current) + 1:target + 1]:
        try:
            r = app.control.set_phase(phase, f"{DEMO_REASON}: step up to {phase}", actor)
            say(f"demo: rollout phase -> {phase} (its go/no-go gate passed)")
        except PhaseChangeRefused as e:
            failing = "; ".join(f"{c.name}: {c.detail}" for c in app.control.gate_for(phase, preview=True)
                                if not c.passed) or str(e)
            r = app.control.set_phase(phase, f"{DEMO_REASON}: step up to {phase}; the go/no-go gate cannot pass "
                                             f"on demo data, overridden for the demo ({failing})"[:1900],
                                      actor, force=True)
            say(f"demo: rollout phase -> {phase} (DEMO OVERRIDE, recorded in the audit trail: the gate fails on "
                f"demo data: {failing})")
        steps.append(r)
    return steps


def _loopback(url: str) -> bool:
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def demo_config(src: str | Path, dest: str | Path) -> Path:
    """A copy of the configuration for the assisted demo: sends allowed (they go to the local sandbox), working
    hours every hour of every day. The users file is not copied."""
    src, dest = Path(src), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("users.yaml", "*.key"))
    prod = dest / "production.json"
    data = json.loads(prod.read_text(encoding="utf-8"))
    data.setdefault("email_behavior", {}).update({"actually_send": True, "shadow_mode": False})
    data.setdefault("working_hours", {}).update(
        {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})
    prod.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (dest / "README.txt").write_text(
        "DEMO configuration written by `alpha dev --assisted` (make run DEMO=assisted) from " + str(src) + ".\n"
        "Sends are allowed and working hours are always, because every part of that stack sends to the local\n"
        "GHL sandbox only. Never point a real deployment at this folder; it is rewritten on every run.\n",
        encoding="utf-8")
    return dest


# ------------------------------------------------------------------------------------------ `alpha dev`

@contextlib.contextmanager
def _environ(env: dict) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def seed_demo_users(env: dict, password: str) -> tuple[list[str], Path]:
    """The demo accounts, in the demo users file of the stack's environment."""
    from engine.adapters.users import demo_users, users_file

    with _environ(env):
        path = users_file(demo=True)
        return demo_users(password, path), path


def stack_facts(env: dict) -> dict:
    """The rollout phase and the sends waiting for approval, read as the parts will read them ({} if unreadable)."""
    try:
        with _environ(env):
            from engine.app import App

            app = App()
            try:
                from engine.services.control import live_sending_allowed

                phase = app.control.state().phase
                return {"phase": phase, "sends": live_sending_allowed(phase, app.settings),
                        "pending": app.approvals.queue(status="pending", kind="send", limit=0)["total"]}
            finally:
                app.store.dispose()
    except Exception:  # noqa: BLE001 - only the ready block's wording depends on it
        return {}


def banner(parts: list[Part], users: list[str], password: str, generated: bool, assisted: bool,
           log_dir: Path, facts: dict | None = None) -> str:
    by = {p.name: p for p in parts}
    w = 72
    pw_note = ("generated for this run; set ALPHA_DEMO_PASSWORD to choose one" if generated
               else "from ALPHA_DEMO_PASSWORD")
    lines = [
        "=" * w,
        "Alpha Swarm is running on this machine (demo mode, everything on 127.0.0.1)",
        f"  Console        {by['console'].url}   (first page: Try this as each role)",
        f"  Demo users     {', '.join(users)}",
        f"  Demo password  {password}   ({pw_note})",
        f"  GHL sandbox    {by['ghl-sandbox'].url}   (every send lands here: /_sandbox/messages;"
        " nothing reaches a real inbox)",
        f"  Webhooks       {by['webhooks'].url}   (POST /webhooks/ghl, /webhooks/rb2b; ALPHA_WEBHOOK_URL)",
        "  Worker         running: executes each send once it is approved",
        "  Rollout phase  " + _phase_line(facts or {}, assisted),
        "  Processes      " + ", ".join(f"{p.name} {p.proc.pid}" for p in parts if p.proc is not None),
        f"  Logs           {log_dir}/",
        "Stop one part and the others stop too. " + READY_MARK,
        "=" * w,
    ]
    return "\n".join(lines)


def _phase_line(facts: dict, assisted: bool) -> str:
    phase, pending = facts.get("phase"), facts.get("pending")
    if phase is None:
        return "see the header of any console page"
    text = f"{phase}" + (" (demo override)" if assisted else "")
    if pending and facts.get("sends") is False:
        return text + (f"; {pending} sends wait in Approvals, but this run's configuration does not send "
                       "(email_behavior in production.json): an approved send is held, not sent. Run "
                       "`make run DEMO=assisted` to have the worker send them to the local sandbox")
    if pending:
        return text + f"; {pending} sends wait in Approvals: log in as approver, approve one, the worker sends it"
    if phase in ("shadow", "parallel"):
        return text + ": nothing is sent (`make run DEMO=assisted` steps the demo into assisted)"
    return text


class _Interrupted(Exception):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) while `alpha dev` prepares (init, demo), before any part runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, _frame):
    raise _Interrupted(signum)


def _step(env: dict, *args: str, out: TextIO) -> None:
    """One preparation step as a child process; a stop signal stops it too (SIGTERM to it, SIGKILL after
    STOP_TIMEOUT) before it is reported, so no step runs on after `alpha dev` is gone."""
    print(f"$ alpha {' '.join(args)}", file=out, flush=True)
    proc = subprocess.Popen(_cli(*args), env=env, stdin=subprocess.DEVNULL)
    try:
        rc = proc.wait()
    except _Interrupted:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise
    if rc != 0:
        raise StackFailed(f"`alpha {' '.join(args)}` failed (exit code {rc}; its message is above); "
                          "nothing was started")


@contextlib.contextmanager
def hold_data_dir(data: Path, what: str) -> Iterator[None]:
    """One `alpha dev` per data folder: a second one (on other ports) would re-key the demo users the first one
    printed the password of, in the same demo users file. An advisory lock on ``data/alpha-dev.lock`` held while
    this one runs (the system releases it when the process ends, however it ends)."""
    import fcntl

    data.mkdir(parents=True, exist_ok=True)
    path = data / "alpha-dev.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            raise PortBusy(f"another `alpha dev` already runs on the data folder {data} ({other}), so nothing was "
                           "started: a second one would change the demo password it printed. Stop it first "
                           "(Ctrl-C in its terminal), or give this one its own ALPHA_DATA_DIR and DATABASE_URL.") \
                from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {what}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def run_dev(console_port: int = DEFAULT_CONSOLE_PORT, ghl_port: int = DEFAULT_GHL_PORT,
            webhook_port: int = DEFAULT_WEBHOOK_PORT, assisted: bool = False, ready_timeout: float = READY_TIMEOUT,
            out: TextIO | None = None, err: TextIO | None = None) -> int:
    from engine.app import data_dir, load_env_file
    from engine.core.config import default_config_dir
    from engine.adapters.users import demo_password

    out = out or sys.stdout
    require_console("`alpha dev`")  # without the console extra: say so in one line, before anything starts
    parts = stack_parts(console_port, ghl_port, webhook_port)
    check_ports(parts)  # first: a busy port starts nothing and touches nothing
    load_env_file()  # as every `alpha` command does (.env never overrides the environment)
    password, generated = demo_password()
    data = data_dir().resolve()
    console = next(p for p in parts if p.name == "console")
    with hold_data_dir(data, f"console {console.url}"):
        env = child_env(dict(os.environ), ghl_port=ghl_port, webhook_port=webhook_port, password=password)
        ignored = ignored_line(ignored_settings(dict(os.environ)))
        if ignored:
            print(ignored, file=out, flush=True)
        env.setdefault("ALPHA_DATA_DIR", str(data))
        problem = stack_database_problem(env)
        if problem:
            raise InvalidRequest(problem)
        if assisted:
            config_dir = demo_config(default_config_dir(), data / "demo-config")
            env["ALPHA_CONFIG_DIR"] = str(config_dir)
            print(f"alpha dev: assisted demo: using the demo configuration in {config_dir} (sends allowed, to the "
                  "local GHL sandbox only)", file=out, flush=True)
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.getsignal(s) for s in handled}
        for s in handled:  # until the supervisor takes over: a stop signal stops the step that runs, nothing starts
            signal.signal(s, _raise_interrupted)
        step = "preparing"
        try:
            try:
                step = "`alpha init`"
                _step(env, "init", out=out)
                missing = demo_shadow_missing(env)  # before `alpha demo`, so its blind-review set has the run
                if missing:
                    print("alpha dev: the demo leads are loaded but their shadow run never finished (an earlier "
                          "`make run` was stopped during it); running it now", file=out, flush=True)
                    step = "`alpha shadow run`"
                    _step(env, "shadow", "run", "--contacts", str(missing), out=out)
                step = "`alpha demo`"
                _step(env, "demo", *(["--assisted"] if assisted else []), out=out)
                step = "preparing"
                users, _ = seed_demo_users(env, password)
                sup = Supervisor(parts, env, data / "logs", out=out, err=err, ready_timeout=ready_timeout)
                print("alpha dev: starting " + ", ".join(p.name for p in parts) + " ...", file=out, flush=True)
                facts = stack_facts(env)
                step = "starting the parts"
                return sup.run(lambda: banner(parts, users, password, generated, assisted, sup.log_dir, facts))
            except _Interrupted as e:
                print(f"\nalpha dev: {signal.Signals(e.signum).name} during {step}: stopped; nothing was started.",
                      file=out, flush=True)
                return 0
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
