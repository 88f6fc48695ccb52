"""``flask jwt rotate``: generate the next signing key and print the rotation procedure.

Nothing is changed by the command itself: where keys live (secret files, Vault, env) is the
operator's; the command says what to set, in which order, and when the old key can go.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask.cli import AppGroup

from config.settings import Settings
from core.app_manager import get_app_manager

jwt_cli = AppGroup("jwt", help="JWT signing keys.")
COMMANDS = [jwt_cli]


def _new_private_key_pem(algorithm: str) -> str:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@jwt_cli.command("rotate")
def rotate() -> None:
    """Print a new signing key and the steps to rotate to it without logging anyone out."""
    manager = get_app_manager()
    settings: Settings = manager.settings
    grace = settings.jwt_refresh_ttl
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    leaked = (
        "\nIf the current key leaked, do not keep it: skip step 1 and end every session"
        '\n(docs/auth.md, "When a signing key leaks").'
    )
    click.echo(f"algorithm: {settings.jwt_algorithm}; current kid: {manager.jwt.kid}")
    if settings.jwt_algorithm.startswith("HS"):
        click.echo("\nNew secret (shown once):\n" + secrets.token_urlsafe(48))
        click.echo(
            "\n1. Append <retired_at>:<the current JWT_SECRET> to JWT_PREVIOUS_SECRETS"
            "\n   (comma-separated), retired_at the UTC time step 2 is rolled out everywhere,"
            f"\n   e.g. {now}: the old key verifies only tokens issued before then."
            "\n2. Set JWT_SECRET to the new secret and roll out every instance."
            f"\n3. After retired_at + {grace} s (JWT_REFRESH_TTL, the longest token life) the"
            "\n   entry verifies nothing any more: remove it and roll out again." + leaked
        )
        return
    click.echo("\nNew private key (shown once):\n" + _new_private_key_pem(settings.jwt_algorithm))
    click.echo(
        "1. Append the current public key (below) to JWT_PREVIOUS_PUBLIC_KEYS, after a line"
        f"\n   with its retired_at (the UTC time step 2 is rolled out everywhere, e.g. {now})."
        "\n2. Set JWT_PRIVATE_KEY to the new private key and roll out every instance."
        f"\n3. After retired_at + {grace} s (JWT_REFRESH_TTL), remove the old public key and"
        "\n   roll out again." + leaked + "\n\nCurrent public key:\n" + manager.jwt.public_key_pem()
    )
