"""`alpha init`, `alpha codes`, `alpha config-check`: the database schema, the seeded control plane and the
configuration."""
from __future__ import annotations

import os
from typing import Optional

import typer

from engine.core.errors import InvalidRequest
from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import default_actor

commands = typer.Typer()  # this module's top-level commands: the root registers them, in its order


@commands.command()
def init(force: bool = typer.Option(False, "--force", help="Break glass: seed the configured rollout phase even "
                                                         "if its go/no-go gates fail (needs --reason; audited)."),
         reason: Optional[str] = typer.Option(None, "--reason", help="Why the gates are overridden (--force)."),
         new_config: Optional[str] = typer.Option(None, "--new-config", metavar="DIR",
                                                  help="Only write a copy of the packaged default configuration "
                                                       "into DIR (never overwrites a file), to edit and use with "
                                                       "ALPHA_CONFIG_DIR=DIR; the database is not touched.")):
    """Create or upgrade the database schema and seed the control plane from config. The configured rollout phase
    is seeded only if the go/no-go gate of every phase up to it passes; otherwise the phase starts at shadow."""
    if new_config is not None:
        from engine.core.config import write_new_config

        written = write_new_config(new_config)
        target = os.path.abspath(new_config)
        print(f"wrote the default configuration ({len(written)} files) to {target}")
        print(f"next: edit it (production.json: sender, limits), then export ALPHA_CONFIG_DIR={target} "
              "and run `alpha init`")
        return
    app = common.open_app(ready=False)
    actor = default_actor()
    if force:
        if not (reason or "").strip():
            raise InvalidRequest("--force needs a --reason (recorded in the audit trail)")
        before, after = app.store.upgrade()
        seeded = app.control.seed_phase_from_config(actor, force=True, reason=reason)
        r = {**app.init(actor), "schema_before": before, "schema": after, "phase_seeded": seeded}
    else:
        r = app.init(actor)
    print(f"database: {r['database']}")
    print(f"schema: {r['schema_before'] or 'empty'} -> {r['schema']}")
    seeded = r["phase_seeded"]
    if not seeded:
        return
    failed = seeded["failed"]
    if failed is None:
        print(f"rollout phase seeded from config: {seeded['phase']}")
        return
    why = "; ".join(f"{c['name']}: {c['detail']}" for c in failed["checks"])
    if seeded["forced"]:
        print(f"rollout phase seeded from config: {seeded['phase']} (FORCED past the failing go/no-go gate for "
              f"{failed['phase']}: {why})")
    else:
        print(f"rollout phase seeded: shadow, not {seeded['configured']} from config: the go/no-go gate for "
              f"{failed['phase']} fails: {why}. Step up with `alpha phase set` once it passes.")


@commands.command("codes")
def codes():
    """List every reason code with its meaning."""
    from engine.core.reasons import DESCRIPTIONS, KIND

    for code, text in DESCRIPTIONS.items():
        print(f"{code.value:26} {KIND[code].value:10} {text}")


@commands.command("config-check")
def config_check():
    """Validate every configuration file (settings, ICP, approver roster, messaging pack) and the environment
    variables, and print a summary; every problem is listed, each naming the file and the key, or the variable."""
    from engine.app import load_env_file
    from engine.services.approvals import load_roster
    from engine.core.config import default_config_dir, load_settings
    from engine.core.envcheck import check_env
    from engine.core.errors import ConfigError
    from engine.rules.icp import load_icp
    from engine.rules.messaging import load_pack

    load_env_file()
    env_file = os.environ.get("ALPHA_ENV_FILE") or os.path.join(os.getcwd(), ".env")
    problems: list[str] = [str(p) for p in check_env(env_file=env_file)]  # the environment, validated the same way
    loaded: dict = {}
    try:
        loaded["settings"] = load_settings()
        cfg_dir = loaded["settings"].config_dir
    except ConfigError as e:
        problems += e.problems
        cfg_dir = default_config_dir()
    for name, load in (("icp", load_icp), ("roster", load_roster), ("pack", load_pack)):
        try:
            loaded[name] = load(cfg_dir)
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(problems)
    s = loaded["settings"]
    p = s.production
    print(f"config OK: {s.config_dir}")
    print(f"  phase {p.rollout_phase.current}, {len(s.spam_terms)} spam terms, {len(s.forbidden_claims)} forbidden "
          f"claims, {len(s.permissions.agents)} agents, warm-up {'on' if s.warmup.enabled else 'off'}")
    print(f"  roster: {len(loaded['roster'].action_types)} action types; messaging pack: "
          f"{len(loaded['pack'].templates)} templates; "
          f"ICP tiers at {loaded['icp'].tiers.tier_1_min}/{loaded['icp'].tiers.tier_2_min}")
