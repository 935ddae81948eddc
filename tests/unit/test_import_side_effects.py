"""Importing the engine does nothing but define things: no third-party module is patched (email_validator
included), no registry is filled (environment variables, phase gates), no exit hook, log handler or signal
handler is installed. Checked in a fresh interpreter, where the imports really run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import atexit, importlib, json, logging, pkgutil, signal, sys
from pathlib import Path

import email_validator

def third_party():
    '''Every attribute of every loaded email_validator module, by identity.'''
    mods = {n: m for n, m in sys.modules.items() if n == "email_validator" or n.startswith("email_validator.")}
    return {f"{n}.{k}": id(v) for n, m in mods.items() for k, v in vars(m).items()}

for info in pkgutil.walk_packages(email_validator.__path__, "email_validator."):
    importlib.import_module(info.name)
hooks = []  # exit hooks registered while the engine is imported, by the module of their function
_register = atexit.register
atexit.register = lambda fn, *a, **k: hooks.append(getattr(fn, "__module__", "?")) or _register(fn, *a, **k)
from engine.core import envcheck

before = {"email_validator": third_party(), "env_vars": sorted(envcheck.VARIABLES),
          "engine_exit_hooks": [], "log_handlers": len(logging.getLogger().handlers),
          "signals": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT)}}
control_only = None
import engine.services.control
control_only = "engine.services.readiness" in sys.modules
root = Path(sys.argv[1])
for p in sorted((root / "engine").rglob("*.py")):
    if "migrations" in p.parts or p.name == "__main__.py":  # a __main__ runs its program when imported
        continue
    parts = list(p.relative_to(root).with_suffix("").parts)
    importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
after = {"email_validator": third_party(), "env_vars": sorted(envcheck.VARIABLES),
         "engine_exit_hooks": [m for m in hooks if m.split(".")[0] == "engine"],
         "log_handlers": len(logging.getLogger().handlers),
         "signals": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT)}}
changed = sorted(k for k in set(before["email_validator"]) | set(after["email_validator"])
                 if before["email_validator"].get(k) != after["email_validator"].get(k))
from engine.services import readiness
gates = {p: [g.__name__ for g in gs] for p, gs in readiness.PHASE_GATES.items()}
fresh = {p: [g.__name__ for g in gs] for p, gs in readiness.phase_gates().items()}
print(json.dumps({"email_validator_changed": changed,
                  "same": {k: before[k] == after[k] for k in before if k != "email_validator"},
                  "control_imports_readiness": control_only, "gates_as_built": gates == fresh}))
"""


def probe(root: Path = ROOT) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(root)], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_engine_patches_and_registers_nothing():
    r = probe()
    assert r["email_validator_changed"] == [], f"importing engine/ changed email_validator: {r}"
    assert all(r["same"].values()), f"importing engine/ registered something: {r['same']}"
    assert r["control_imports_readiness"] is False, "the control plane must be given its gates, not import them"
    assert r["gates_as_built"] is True, "the phase gate table changed after it was built"
