"""``flask config show`` never prints a password, whatever form the connection string takes."""

from __future__ import annotations

import pytest

from core.testing import AppFactory, manager_of

DSNS = {
    "libpq key/value": (
        "host=127.0.0.1 port=5432 user=app password=kv-hunter2 dbname=app",
        "host=127.0.0.1 port=5432 user=app password=**** dbname=app",
    ),
    "libpq quoted": (
        "host=127.0.0.1 password='quoted hunter2' dbname=app",
        "host=127.0.0.1 password=**** dbname=app",
    ),
    "URL query": (
        "postgresql://app@127.0.0.1/app?sslmode=disable&password=query-hunter2",
        "postgresql://app@127.0.0.1/app?sslmode=disable&password=****",
    ),
    "URL user info": (
        "postgresql://app:userinfo-hunter2@127.0.0.1/app",
        "postgresql://app:****@127.0.0.1/app",
    ),
}


@pytest.mark.parametrize("form", sorted(DSNS))
def test_config_show_masks_every_form_of_connection_password(
    make_app: AppFactory, form: str
) -> None:
    dsn, shown = DSNS[form]
    app = make_app({"POSTGRES_DSN": dsn}, start=False)
    result = app.test_cli_runner().invoke(args=["config", "show"])
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("POSTGRES_DSN ")]
    assert row.split(maxsplit=2)[2] == shown
    assert "hunter2" not in result.output
    # The log redactor knows the password as well.
    secrets = manager_of(app).settings.secret_values()
    assert any("hunter2" in value for value in secrets)
