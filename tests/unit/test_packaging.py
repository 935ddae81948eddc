"""Packaging without building anything: where the configuration comes from, `alpha init --new-config`, the
read-only packaged defaults, and a host without the console extra (no streamlit, no plotly).

tests/integration/test_wheel.py builds and installs the real wheel; these are the fast checks of the same rules."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.core import config as cfg
from engine.core import defaults
from engine.core.errors import ConfigError, InvalidRequest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Pretend the engine runs from a wheel: engine/defaults/config and the demo CSV exist in a fake package dir."""
    fake = tmp_path / "site" / "engine" / "defaults"
    defaults.write_new_config(fake / "config", ROOT / "config")
    (fake / defaults.DEMO_LEADS).write_text("email\n")
    monkeypatch.setattr(defaults, "_INSTALLED", fake)
    return fake


def test_config_dir_is_env_then_working_dir_then_the_packaged_defaults(tmp_path, monkeypatch, installed):
    monkeypatch.delenv("ALPHA_CONFIG_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cfg.default_config_dir() == installed / "config"
    assert defaults.packaged_demo_leads() == installed / defaults.DEMO_LEADS
    (tmp_path / "config").mkdir()
    assert cfg.default_config_dir() == installed / "config", "a config/ without production.json is not a config"
    (tmp_path / "config" / "production.json").write_text("{}")
    assert cfg.default_config_dir() == tmp_path / "config"
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert cfg.default_config_dir() == tmp_path / "elsewhere"


def test_in_a_checkout_the_defaults_are_the_repositorys_own_files(tmp_path, monkeypatch):
    monkeypatch.delenv("ALPHA_CONFIG_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert not defaults.installed()
    assert cfg.default_config_dir() == ROOT / "config"
    assert defaults.packaged_demo_leads() == ROOT / "data" / "demo_leads.csv"


def test_new_config_copies_the_shipped_files_only_and_the_copy_loads(tmp_path):
    src = tmp_path / "checkout-config"
    defaults.write_new_config(src, ROOT / "config")
    (src / "users.yaml").write_text("credentials: {}\n")  # local state in a working config folder
    (src / "notes.md").write_text("mine\n")
    written = defaults.write_new_config(tmp_path / "new", src)
    names = {p.relative_to(tmp_path / "new").as_posix() for p in written}
    assert "production.json" in names and "templates/pack.json" in names and "exclusions/customers.txt" in names
    assert "users.yaml" not in names and "notes.md" not in names
    assert cfg.load_settings(tmp_path / "new").production.rollout_phase.current


def test_new_config_refuses_to_overwrite_and_names_every_file(tmp_path):
    dest = tmp_path / "site"
    dest.mkdir()
    (dest / "production.json").write_text('{"mine": true}')
    (dest / "templates").mkdir()
    (dest / "templates" / "pack.json").write_text("{}")
    with pytest.raises(InvalidRequest) as ei:
        cfg.write_new_config(dest)
    msg = str(ei.value)
    assert str(dest / "production.json") in msg and str(dest / "templates" / "pack.json") in msg
    assert "nothing was written" in msg
    assert (dest / "production.json").read_text() == '{"mine": true}'
    assert not (dest / "warmup_plan.json").exists(), "a refused copy wrote some files"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InvalidRequest, match="not a folder"):
        cfg.write_new_config(tmp_path / "a-file")


def test_the_packaged_defaults_are_read_only_for_the_users_file(tmp_path, monkeypatch, installed):
    import engine.adapters.users as users

    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_CONFIG_DIR", "ALPHA_USERS_FILE", "ALPHA_DEMO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALPHA_ENV_FILE", str(tmp_path / "none.env"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="read-only.*alpha init --new-config"):
        users.add_user("jane", "Jane", "jane@example.com", "admin", "a-long-enough-password-1")
    assert not (installed / "config" / "users.yaml").exists()
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(tmp_path / "mine"))
    users.add_user("jane", "Jane", "jane@example.com", "admin", "a-long-enough-password-1")
    assert (tmp_path / "mine" / "users.yaml").is_file()


def test_console_commands_without_the_console_extra_say_what_to_install(monkeypatch):
    from engine.entrypoints import console_server, devstack

    monkeypatch.setattr(console_server, "CONSOLE_MODULES", ("streamlit", "no_such_module_for_this_test"))
    with pytest.raises(console_server.ConsoleNotInstalled, match=r"no_such_module_for_this.*alpha-swarm\[console\]"):
        console_server.run_console("127.0.0.1", 1)
    with pytest.raises(console_server.ConsoleNotInstalled, match=r"`alpha dev`.*alpha-swarm\[console\]"):
        devstack.run_dev(console_port=1, ghl_port=2, webhook_port=3)


def test_no_engine_module_imports_the_consoles_dependencies():
    """Every engine module imports on a host without streamlit and plotly, and none pulls them in (a worker, the
    webhook receiver and the CLI stay small)."""
    code = """
import importlib, pkgutil, sys
sys.modules.update(dict.fromkeys(("streamlit", "plotly")))  # as on a host without the console extra
import engine
names = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")
         if ".migrations" not in m.name and not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("streamlit", "plotly") and sys.modules[n] is not None)
assert not loaded, loaded
print(len(names), "modules")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[0]) > 50
