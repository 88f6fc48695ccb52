"""``flask users create-admin``, ``set-roles``, ``unlock`` and ``end-sessions``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from core.app_manager import get_app_manager
from core.edge.validation import load_model
from core.errors import ApiError
from modules.auth.schemas import Registration
from modules.auth.service import AuthService
from modules.auth.users import normalise_email

users_cli = AppGroup("users", help="Manage user accounts.")


def _service() -> AuthService:
    manager = get_app_manager()
    manager.database.mongo.ensure_indexes()  # the CLI app skips start-up work
    return manager.services.get("auth", AuthService)


@users_cli.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--username", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(email: str, username: str, password: str) -> None:
    """Create a user with the roles admin and user."""
    service = _service()
    try:
        registration = load_model(
            Registration, {"email": email, "username": username, "password": password}
        )
        user = service.register(registration, roles=("admin", "user"))
    except ApiError as exc:
        raise click.ClickException(exc.summary()) from None
    click.echo(f"created admin {user['username']} <{user['email']}> id={user['_id']}")


@users_cli.command("set-roles")
@click.argument("email")
@click.argument("roles", nargs=-1, required=True)
def set_roles(email: str, roles: tuple[str, ...]) -> None:
    """Replace the roles of the user with EMAIL (takes effect at the next token refresh)."""
    try:
        user = _service().users.set_roles(email, roles)
    except ApiError as exc:
        raise click.ClickException(exc.summary()) from None
    click.echo(f"{user['email']}: {', '.join(user['roles'])}")


@users_cli.command("unlock")
@click.argument("email")
def unlock(email: str) -> None:
    """Forget the failed logins of EMAIL, so its lock (if any) ends now."""
    had = _service().guard.unlock(email)
    click.echo(f"{normalise_email(email)}: {'unlocked' if had else 'was not locked'}")


@users_cli.command("end-sessions")
@click.argument("email", required=False)
@click.option("--all", "everyone", is_flag=True, help="Every user's sessions.")
def end_sessions(email: str | None, everyone: bool) -> None:
    """End the sessions of EMAIL (or of every user with --all): their tokens stop working and
    their sockets close, on every instance. After a signing key leaked, see docs/auth.md."""
    if bool(email) == everyone:
        raise click.UsageError("give an EMAIL or --all")
    service = _service()
    user_id = None
    if email:
        user = service.users.by_email(email)
        if user is None:
            raise click.ClickException(f"No user with email {normalise_email(email)}.")
        user_id = str(user["_id"])
    ended = service.end_all_sessions(user_id)
    security = get_app_manager().security
    for session_id in ended:
        security.record("session.revoked", principal_type="cli", session_id=session_id)
    security.flush()
    click.echo(f"ended {len(ended)} session(s)")
