"""Versioned SQL migrations on a real PostgreSQL: once only, locked, checked, and the CLI."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg2.errors
import pytest

from core.app_manager import AppManager
from core.devstack import free_port
from core.errors import StartupError
from core.managers.database.migrations import Migration, Migrator, discover
from core.managers.database.postgres import PostgresStore
from core.testing import AppFactory, manager_of
from tests.support.packages import make_modules_package, module_source


def store(make_app: AppFactory, dsn: str, **overrides: str) -> PostgresStore:
    settings = {"POSTGRES_DSN": dsn, "POSTGRES_MIGRATE_ON_START": "false", **overrides}
    manager: AppManager = manager_of(make_app(settings))
    return manager.database.postgres


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def recorded(pg: PostgresStore, module: str = "core") -> list[tuple[str, str]]:
    """``(version, checksum)`` of what ``module`` (a source of migrations) has applied."""
    rows = pg.execute(
        "SELECT version, checksum FROM schema_migrations WHERE module = %s ORDER BY version",
        (module,),
    )
    return [(row["version"], row["checksum"]) for row in rows]


def table_exists(pg: PostgresStore, name: str) -> bool:
    return bool(pg.execute("SELECT to_regclass(%s) IS NOT NULL AS ok", (name,))[0]["ok"])


def labels(migrations: list[Migration]) -> list[str]:
    return [m.label for m in migrations]


@pytest.mark.project_wide
def test_start_up_applies_the_audit_log_migration(make_app: AppFactory, fresh_dsn: str) -> None:
    manager: AppManager = manager_of(make_app({"POSTGRES_DSN": fresh_dsn}))
    pg = manager.database.postgres
    # The project's modules may add migrations of their own: they are not this test's subject.
    assert recorded(pg, module="core") == [(m.version, m.checksum) for m in discover()]
    columns = {
        row["column_name"]: row["data_type"]
        for row in pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'audit_log'"
        )
    }
    assert columns["id"] == "bigint"
    assert columns["occurred_at"] == "timestamp with time zone"
    assert columns["details"] == "jsonb"
    assert columns["duration_ms"] == "double precision"
    assert {"kind", "action", "principal_type", "principal_id", "outcome", "status"} <= set(columns)
    indexes = {
        row["indexdef"].split(" USING btree ")[1]
        for row in pg.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_log'")
    }
    assert {"(occurred_at)", "(principal_type, principal_id)"} <= indexes
    row = pg.execute(
        "INSERT INTO audit_log (kind, action, outcome) VALUES ('action', 'system.ping', 'ok') "
        "RETURNING id, occurred_at, details"
    )[0]
    assert row["id"] >= 1
    assert row["occurred_at"] is not None
    assert row["details"] == {}


def test_start_up_leaves_the_schema_alone_when_migrate_on_start_is_off(
    make_app: AppFactory, fresh_dsn: str
) -> None:
    pg = store(make_app, fresh_dsn)
    assert not table_exists(pg, "audit_log")
    assert not table_exists(pg, "schema_migrations")


def test_a_second_upgrade_applies_nothing(make_app: AppFactory, fresh_dsn: str) -> None:
    pg = store(make_app, fresh_dsn)
    migrator = Migrator(pg)
    assert labels(migrator.upgrade()) == labels(discover())
    assert migrator.upgrade() == []
    assert recorded(pg) == [(m.version, m.checksum) for m in discover()]


def test_a_migration_changed_after_it_was_applied_is_refused_by_name(
    make_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", {"0001_things.sql": "CREATE TABLE things (id int);"})
    pg = store(make_app, fresh_dsn)
    migrator = Migrator(pg, directory)
    migrator.upgrade()
    (directory / "0001_things.sql").write_text("CREATE TABLE things (id bigint);")
    with pytest.raises(StartupError, match=r"0001_things\.sql changed after it was applied"):
        migrator.upgrade()
    assert [line.state for line in migrator.status()] == ["changed"]


def test_a_failing_migration_leaves_neither_changes_nor_a_record(
    make_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_first.sql": "CREATE TABLE first (id int);",
            "0002_broken.sql": "CREATE TABLE second (id int); SELECT 1 / 0;",
        },
    )
    pg = store(make_app, fresh_dsn)
    migrator = Migrator(pg, directory)
    with pytest.raises(psycopg2.errors.DivisionByZero):
        migrator.upgrade()
    assert [version for version, _ in recorded(pg)] == ["0001"]
    assert table_exists(pg, "first")
    assert not table_exists(pg, "second")

    (directory / "0002_broken.sql").write_text("CREATE TABLE second (id int);")
    assert labels(migrator.upgrade()) == ["0002_broken"]


def test_two_instances_upgrading_at_once_apply_each_migration_once(
    make_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    # Plain CREATE TABLE: applying a migration twice would fail with DuplicateTable; the
    # sleep keeps the first instance inside its transaction while the second arrives.
    directory = write(
        tmp_path / "m",
        {
            "0001_slow.sql": "CREATE TABLE slow (id int); SELECT pg_sleep(0.3);",
            "0002_more.sql": "CREATE TABLE more (id int);",
        },
    )
    migrators = [Migrator(store(make_app, fresh_dsn), directory) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(5)
            results[index] = labels(migrators[index].upgrade())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(results[0] + results[1]) == ["0001_slow", "0002_more"]
    assert [version for version, _ in recorded(migrators[0].store)] == ["0001", "0002"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_short.sql": "SELECT 1;"}, r"1_short\.sql: name it NNNN_lower_snake\.sql"),
        ({"0001_Upper.sql": "SELECT 1;"}, r"0001_Upper\.sql: name it"),
        (
            {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"},
            r"0001_b\.sql: version 0001 is also 0001_a\.sql",
        ),
    ],
)
def test_badly_named_migration_files_are_refused(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(StartupError, match=message):
        discover(write(tmp_path / "m", files))


def test_files_other_than_sql_are_ignored(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", {"README.md": "notes", "0001_a.sql": "SELECT 1;"})
    assert labels(discover(directory)) == ["0001_a"]


def test_status_lists_applied_pending_and_missing_versions(
    make_app: AppFactory, fresh_dsn: str, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;"})
    migrator = Migrator(store(make_app, fresh_dsn), directory)
    assert [(s.version, s.state) for s in migrator.status()] == [
        ("0001", "pending"),
        ("0002", "pending"),
    ]
    migrator.upgrade()
    (directory / "0002_b.sql").unlink()
    write(directory, {"0003_c.sql": "SELECT 3;"})
    states = [(s.version, s.state, s.applied_at is not None) for s in migrator.status()]
    assert states == [
        ("0001", "applied", True),
        ("0002", "missing", True),
        ("0003", "pending", False),
    ]
    assert labels(migrator.upgrade()) == ["0003_c"]  # a missing file does not block upgrades


@pytest.mark.project_wide
def test_flask_db_status_and_upgrade_report_what_they_do(
    make_app: AppFactory, fresh_dsn: str
) -> None:
    app = make_app({"POSTGRES_DSN": fresh_dsn, "POSTGRES_MIGRATE_ON_START": "false"})
    runner = app.test_cli_runner()

    before = runner.invoke(args=["db", "status"])
    assert before.exit_code == 0, before.output
    assert "0001_audit_log" in before.output
    assert "pending" in before.output

    first = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0, first.output
    # Every migration of this project: the framework's first, then its modules' (if any).
    everything = manager_of(app).database.migrator.migrations()
    assert labels(everything)[: len(discover())] == labels(discover())
    assert first.output.splitlines() == [f"applied {label}" for label in labels(everything)]

    second = runner.invoke(args=["db", "upgrade"])
    assert second.exit_code == 0, second.output
    assert "nothing to apply" in second.output

    after = runner.invoke(args=["db", "status"])
    assert "applied" in after.output
    assert "pending" not in after.output


def test_flask_db_fails_cleanly_when_postgres_is_unreachable(make_app: AppFactory) -> None:
    dsn = f"postgresql://app:sekret-pw@127.0.0.1:{free_port()}/nowhere"
    app = make_app({"POSTGRES_DSN": dsn, "POSTGRES_CONNECT_TIMEOUT": "1"}, start=False)
    for command in ("status", "upgrade"):
        result = app.test_cli_runner().invoke(args=["db", command])
        assert result.exit_code == 1
        assert "postgres is unavailable" in result.output
        assert "sekret-pw" not in result.output


def modules_with_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrations: dict[str, dict[str, str]]
) -> str:
    """A modules package: ``alpha`` depends on ``zulu``; each gets ``migrations`` files."""
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {"alpha": module_source(("zulu",)), "zulu": module_source(), "plain": module_source()},
    )
    for module, files in migrations.items():
        write(tmp_path / package / module / "migrations", files)
    return package


MODULE_MIGRATIONS = {
    # alpha's table references zulu's: applying alpha first (alphabetical order) would fail.
    "alpha": {"0001_orders.sql": "CREATE TABLE alpha_orders (item int REFERENCES zulu_items);"},
    "zulu": {
        "0001_items.sql": "CREATE TABLE zulu_items (id int PRIMARY KEY);",
        "0002_price.sql": "ALTER TABLE zulu_items ADD COLUMN price numeric;",
    },
}


def test_module_migrations_run_after_core_in_dependency_order(
    make_app: AppFactory, fresh_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = modules_with_migrations(tmp_path, monkeypatch, MODULE_MIGRATIONS)
    app = make_app({"POSTGRES_DSN": fresh_dsn, "MODULES_PACKAGES": package})
    pg = manager_of(app).database.postgres
    rows = pg.execute("SELECT module, version, name FROM schema_migrations ORDER BY applied_at")
    core = [("core", m.version, m.name) for m in discover()]
    assert [(r["module"], r["version"], r["name"]) for r in rows] == [
        *core,
        ("zulu", "0001", "items"),
        ("zulu", "0002", "price"),
        ("alpha", "0001", "orders"),
    ]
    assert table_exists(pg, "alpha_orders")

    status = app.test_cli_runner().invoke(args=["db", "status"])
    assert status.exit_code == 0, status.output
    lines = [line.split()[:3] for line in status.output.splitlines()]
    expected = [
        *core,
        ("zulu", "0001", "items"),
        ("zulu", "0002", "price"),
        ("alpha", "0001", "orders"),
    ]
    assert lines == [[module, f"{version}_{name}", "applied"] for module, version, name in expected]


def test_a_disabled_modules_migrations_are_not_applied(
    make_app: AppFactory, fresh_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations = {**MODULE_MIGRATIONS, "plain": {"0001_notes.sql": "CREATE TABLE plain_t (i int);"}}
    package = modules_with_migrations(tmp_path, monkeypatch, migrations)
    app = make_app(
        {"POSTGRES_DSN": fresh_dsn, "MODULES_PACKAGES": package, "MODULES_DISABLED": "plain"}
    )
    pg = manager_of(app).database.postgres
    assert not table_exists(pg, "plain_t")
    assert "plain" not in {
        row["module"] for row in pg.execute("SELECT module FROM schema_migrations")
    }
    status = app.test_cli_runner().invoke(args=["db", "status"]).output
    assert "plain" not in status


def test_a_changed_module_migration_is_refused_by_module_and_name(
    make_app: AppFactory, fresh_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = modules_with_migrations(tmp_path, monkeypatch, MODULE_MIGRATIONS)
    make_app({"POSTGRES_DSN": fresh_dsn, "MODULES_PACKAGES": package})
    edited = tmp_path / package / "zulu" / "migrations" / "0002_price.sql"
    edited.write_text("ALTER TABLE zulu_items ADD COLUMN cost numeric;")
    with pytest.raises(StartupError, match=r"migration 0002_price\.sql changed"):
        make_app({"POSTGRES_DSN": fresh_dsn, "MODULES_PACKAGES": package})


def test_a_version_1_bookkeeping_table_is_upgraded_in_place(
    make_app: AppFactory, fresh_dsn: str
) -> None:
    pg = store(make_app, fresh_dsn)
    (first, *_) = discover()
    pg.execute(
        "CREATE TABLE schema_migrations (version text PRIMARY KEY, name text NOT NULL, "
        "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    pg.execute(first.sql)
    pg.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
        (first.version, first.name, first.checksum),
    )
    migrator = Migrator(pg)
    status = migrator.status()[0]
    assert (status.module, status.version, status.state) == ("core", first.version, "applied")
    assert first.label not in labels(migrator.upgrade())  # not applied a second time
    rows = pg.execute(
        "SELECT module, version FROM schema_migrations WHERE version = %s", (first.version,)
    )
    assert [(r["module"], r["version"]) for r in rows] == [("core", first.version)]
