"""`alpha users`: console users, their roles and their console sessions."""
from __future__ import annotations

import sys
from typing import Optional

import typer
from sqlalchemy.exc import OperationalError

from engine.core.errors import AlphaError
from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import ActorOpt, JsonOpt, default_actor, print_json

users_cli = typer.Typer(no_args_is_help=True, help="Console users and their roles (config/users.yaml).")


@users_cli.command("add")
def users_add(username: str, name: str = typer.Option(..., "--name"), email: str = typer.Option(..., "--email"),
              role: str = typer.Option(..., "--role", help="ae | approver | ops | admin")):
    """Add a console user; the password is asked for (never an argument, so it stays out of shell history)."""
    from engine.adapters.users import add_user

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    add_user(username, name, email, role, password)
    print(f"user {username} added with role {role}")


def _revoke_sessions(username: str, reason: str) -> None:
    """End the user's console sessions on the server (audited). Without a usable database they end anyway at
    their next click (the console checks the user and the password fingerprint on every run)."""
    from engine.services.sessions import SessionService

    try:
        app = common.open_app()
        n = SessionService.for_app(app).revoke_user(username, reason, f"cli:{default_actor()}")
    except (AlphaError, OperationalError) as e:
        print(f"note: open console sessions of {username} were not revoked in the database ({e}); they are "
              "refused at their next click anyway", file=sys.stderr)
        return
    print(f"{n} open console session(s) of {username} ended")


@users_cli.command("remove")
def users_remove(username: str):
    """Remove a console user and end their console sessions."""
    from engine.adapters.users import remove_user

    remove_user(username)
    print(f"user {username} removed")
    _revoke_sessions(username, "user_removed")


@users_cli.command("set-password")
def users_set_password(username: str):
    """Set a console user's password (asked for, twice) and end their console sessions."""
    from engine.adapters.users import set_password

    password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    set_password(username, password)
    print(f"password of {username} changed")
    _revoke_sessions(username, "password_changed")


@users_cli.command("sessions")
def users_sessions(username: Optional[str] = typer.Argument(None, help="Only this user's sessions."),
                   include_ended: bool = typer.Option(False, "--all", help="Also ended (revoked, expired) ones."),
                   as_json: bool = JsonOpt):
    """Console sessions: who is signed in, since when, from where (never the token)."""
    from engine.services.sessions import SessionService

    rows = SessionService.for_app(common.open_app()).sessions(username, include_ended=include_ended)
    if as_json:
        print_json(rows)
        return
    if not rows:
        print("no open console sessions" if not include_ended else "no console sessions")
    for r in rows:
        print(f"{r['id']:>6} {r['username']:20} {r['state']:26} since {r['created_at']:%Y-%m-%d %H:%M} UTC  "
              f"last seen {r['last_seen_at']:%Y-%m-%d %H:%M} UTC  {r['client'] or ''}")


@users_cli.command("revoke")
def users_revoke(username: str, actor: Optional[str] = ActorOpt):
    """End every open console session of a user now (they must log in again)."""
    from engine.services.sessions import SessionService

    n = SessionService.for_app(common.open_app()).revoke_user(username, "revoked", f"cli:{actor or default_actor()}")
    print(f"{n} open console session(s) of {username} ended")


@users_cli.command("list")
def users_list(as_json: bool = JsonOpt):
    """Console users and roles (no password hashes)."""
    from engine.adapters.users import list_users

    rows = list_users()
    if as_json:
        print_json(rows)
        return
    for u in rows:
        print(f"{u['username']:20} {', '.join(u.get('roles') or []):20} {u.get('email') or ''}")
