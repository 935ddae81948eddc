"""Helpers shared by integration tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = "548 Market St, Suite 100, San Francisco, CA 94104, USA"
UNSUB = "https://alphaswarm.example/unsubscribe"


TEST_SECRET = b"test-unsubscribe-secret-0123456789"  # ALPHA_UNSUBSCRIBE_SECRET in every test (tests/conftest.py)


def unsub_link(to: str | None, secret: bytes = TEST_SECRET) -> str:
    """The recipient's own one-click unsubscribe link (the content rule checks the token is theirs)."""
    from engine.rules.unsubscribe import unsubscribe_url

    return unsubscribe_url(UNSUB, to or "", secret)


def email(key: str, to: str = "jane@acme.io", *, agent: str = "GHL_MASTER", action: str = "send_email",
          subject: str = "A question about your sales team", body: str = "Hi, a short note about pipeline reviews.",
          sender: str = "sales@alphaswarm.example", **extra) -> dict:
    html = (f"<p>{body}</p><p>Alpha Swarm Inc., {ADDRESS}</p>"
            f'<p><a href="{unsub_link(to)}">Unsubscribe</a></p>')
    return {"agent": agent, "action": action, "idempotency_key": key, "to": to, "from": sender,
            "subject": subject, "html": html, **extra}


def alpha_env(db_url: str, config_dir: Path, tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("EMERGENCY_STOP",)}
    env.update({
        "DATABASE_URL": db_url,
        "ALPHA_CONFIG_DIR": str(config_dir),
        "ALPHA_ENV_FILE": str(tmp / "proc.env"),
        "ALPHA_DATA_DIR": str(tmp / "data"),
        "ALPHA_UNSUBSCRIBE_SECRET": "test-unsubscribe-secret-0123456789",
        "PYTHONPATH": str(ROOT),
    })
    env.update(extra)
    return env


def alpha(env: dict, *args: str, input: str | None = None, check: bool = False, timeout: float = 300):
    """Run the real `alpha` CLI in a subprocess."""
    p = subprocess.run([sys.executable, "-m", "engine.entrypoints.cli", *args], env=env, input=input,
    capture_output=True,
                       text=True, timeout=timeout, cwd=str(ROOT))
    if check and p.returncode != 0:
        raise AssertionError(f"alpha {' '.join(args)} exited {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
