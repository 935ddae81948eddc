"""The CLI package (engine/entrypoints/cli/): one module per command group, assembled by the root module. What the
split must not lose: a command or group defined in a module but never registered, the order `alpha --help` lists
them in, and one replaceable way to open the engine (tests hand the commands an engine they built)."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import typer
import typer.main

import engine.entrypoints.cli as root
from engine.entrypoints.cli import common

CLI_DIR = Path(root.__file__).parent
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(CLI_DIR)]) if m.name not in ("__main__",))


def typers_of(module) -> dict[str, typer.Typer]:
    return {name: v for name, v in vars(module).items() if isinstance(v, typer.Typer)}


def test_every_module_with_commands_is_registered():
    with_commands = {m for m in MODULES if "commands" in typers_of(importlib.import_module(f"{root.__name__}.{m}"))}
    missing = with_commands - {m.__name__.rsplit(".", 1)[1] for m in root.COMMAND_MODULES}
    assert not missing, f"modules with top-level commands the root never registers: {sorted(missing)}"


def test_every_group_app_is_added_to_the_root():
    added = {id(g.typer_instance) for g in root.cli.registered_groups}
    for m in MODULES:
        module = importlib.import_module(f"{root.__name__}.{m}")
        for name, app in typers_of(module).items():
            if name != "commands" and app is not root.cli:
                assert id(app) in added, f"{module.__name__}.{name} is a command group never added to the root app"


def test_the_root_lists_top_level_commands_in_order_then_the_groups():
    names = list(typer.main.get_command(root.cli).commands)
    groups = [g.name for g in root.cli.registered_groups]
    assert names == list(root.TOP_LEVEL_ORDER) + groups


def test_a_command_missing_from_the_order_is_listed_last_not_dropped():
    class Module:
        commands = typer.Typer()

    @Module.commands.command("zeta")
    def zeta():
        """A command no order names."""

    @Module.commands.command()
    def init_thing():
        """Named from its function: init-thing."""

    got = [root.command_name(i) for i in root.ordered_commands([Module], order=("init-thing",))]
    assert got == ["init-thing", "zeta"]


def test_commands_open_the_engine_through_common_so_one_replacement_reaches_them_all():
    """``from ...common import open_app`` would bind the function at import time: a test replacing
    ``common.open_app`` would then miss that module's commands, and they would open a real engine."""
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("cli.common"):
                assert "open_app" not in [a.name for a in node.names], f"{path.name}:{node.lineno} imports open_app"


def test_command_modules_do_not_import_the_root():
    """No cycle: the root imports the command modules; they import only ``common`` from the package."""
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == root.__name__:
                assert [a.name for a in node.names] == ["common"], f"{path.name}:{node.lineno}"
            if isinstance(node, ast.Import):
                assert root.__name__ not in [a.name for a in node.names], f"{path.name}:{node.lineno}"


def test_a_replaced_open_app_is_what_a_command_uses(monkeypatch):
    from typer.testing import CliRunner

    class Refused(Exception):
        pass

    def refuse(ready=True, serving=None):
        raise Refused("opened through common.open_app")

    monkeypatch.setattr(common, "open_app", refuse)
    for args in (["status"], ["phase", "show"], ["suppress", "list"], ["approvals", "list"], ["users", "sessions"]):
        out = CliRunner().invoke(root.cli, args)
        assert isinstance(out.exception, Refused), (args, out.output, out.exception)
