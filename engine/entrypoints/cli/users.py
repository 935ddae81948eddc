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


def _file_note() -> str:
    """Which users file a change went to: always named, and in demo mode said plainly, so a password change or a
    removal meant for the real users is never silently made to the demo accounts instead."""
    from engine.adapters.users import demo_mode, production_users_file, users_file

    path = users_file()
    if demo_mode():
        return (f" in the DEMO users file {path} (ALPHA_DEMO is on); the production users file "
                f"{production_users_file()} is unchanged")
    return f" in {path}"


@users_cli.command("add")
def users_add(username: str, name: str = typer.Option(..., "--name"), email: str = typer.Option(..., "--email"),
              role: str = typer.Option(..., "--role", help="ae | approver | ops | admin")):
    """Add a console user; the password is asked for (never an argument, so it stays out of shell history)."""
    from engine.adapters.users import add_user

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    add_user(username, name, email, role, password)
    print(f"user {username} added with role {role}{_file_note()}")


def _stamp(username: str) -> str | None:
    """The password fingerprint of ``username`` in the users file in use (the demo file in demo mode), or None."""
    from engine.adapters.users import find_user, password_stamp

    user = find_user(username)
    return password_stamp(user["password"]) if user else None


def _scope_note() -> str:
    from engine.adapters.users import demo_mode

    return (" (the demo user's only: sessions of a production user of that name are untouched)"
            if demo_mode() else "")


def _revoke_sessions(username: str, reason: str, stamp: str | None) -> None:
    """End the console sessions on the server (audited) that were opened with ``stamp``, the password the changed
    users file held for the user before the change: that file's user's sessions, never those of a same-named user
    of another users file on the same database (demo mode's ``admin`` and production's). Without a usable
    database they end anyway at their next click (the console checks the user and the password fingerprint on
    every run)."""
    from engine.services.sessions import SessionService

    if stamp is None:
        return
    try:
        app = common.open_app()
        n = SessionService.for_app(app).revoke_user(username, reason, f"cli:{default_actor()}", stamp=stamp)
    except (AlphaError, OperationalError) as e:
        print(f"note: open console sessions of {username} were not revoked in the database ({e}); they are "
              "refused at their next click anyway", file=sys.stderr)
        return
    print(f"{n} open console session(s) of {username} ended{_scope_note()}")


@users_cli.command("remove")
def users_remove(username: str):
    """Remove a console user and end their console sessions."""
    from engine.adapters.users import remove_user

    stamp = _stamp(username)
    remove_user(username)
    print(f"user {username} removed{_file_note()}")
    _revoke_sessions(username, "user_removed", stamp)


@users_cli.command("set-password")
def users_set_password(username: str):
    """Set a console user's password (asked for, twice) and end their console sessions."""
    from engine.adapters.users import set_password

    password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    stamp = _stamp(username)
    set_password(username, password)
    print(f"password of {username} changed{_file_note()}")
    _revoke_sessions(username, "password_changed", stamp)


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
    """End every open console session of a user now (they must log in again). In demo mode only the demo user's
    (a production user of the same name on the same database keeps theirs)."""
    from engine.adapters.users import demo_mode, users_file
    from engine.services.sessions import SessionService

    stamp = None
    if demo_mode():
        stamp = _stamp(username)
        if stamp is None:
            print(f"no user {username} in the DEMO users file {users_file()} (ALPHA_DEMO is on): no session ended; "
                  "sessions of production users are never ended in demo mode")
            return
    n = SessionService.for_app(common.open_app()).revoke_user(username, "revoked", f"cli:{actor or default_actor()}",
                                                              stamp=stamp)
    print(f"{n} open console session(s) of {username} ended{_scope_note()}")


@users_cli.command("unlock")
def users_unlock(username: str, actor: Optional[str] = ActorOpt):
    """End the login lockout of a name now (its failed logins are forgotten; audited)."""
    from engine.services.sessions import SessionService

    n = SessionService.for_app(common.open_app()).unlock(username, f"cli:{actor or default_actor()}")
    print(f"{username}: {n} failed login(s) forgotten, not locked" if n else f"{username} was not locked")


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
