"""MongoStore against a real server: indexes, roles, retry settings, outage and recovery."""

from __future__ import annotations

import pytest
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError, ServerSelectionTimeoutError

from core.app_manager import AppManager
from core.devstack import MongoServer
from core.managers.database.mongo import MongoStore
from core.testing import AppFactory, manager_of, problem
from tests.database.conftest import eventually
from tests.support.servers import stopped


def started(make_app: AppFactory, overrides: dict[str, str] | None = None) -> AppManager:
    return manager_of(make_app(overrides))


def test_declared_indexes_are_created_at_start_up(make_app: AppFactory) -> None:
    app = make_app(start=False)
    manager: AppManager = manager_of(app)
    mongo = manager.database.mongo
    mongo.declare_indexes("widgets", [IndexModel([("sku", 1)], unique=True, name="sku_unique")])
    mongo.declare_indexes("widgets", [IndexModel([("owner", 1), ("at", -1)], name="owner_at")])
    assert "sku_unique" not in mongo.collection("widgets").index_information()

    manager.start()

    names = {index["name"] for index in mongo.collection("widgets").list_indexes()}
    assert {"sku_unique", "owner_at"} <= names
    mongo.collection("widgets").insert_one({"sku": "A-1"})
    with pytest.raises(DuplicateKeyError):
        mongo.collection("widgets").insert_one({"sku": "A-1"})


def test_read_write_reads_the_primary_and_read_only_the_configured_preference(
    make_app: AppFactory,
) -> None:
    mongo = started(make_app).database.mongo
    assert mongo.collection("notes").read_preference.mongos_mode == "primary"
    read_only = mongo.collection("notes", role="read_only")
    assert read_only.read_preference.mongos_mode == "secondaryPreferred"

    mongo.collection("notes").insert_one({"_id": "n1", "body": "hello"})
    assert read_only.find_one({"_id": "n1"}) == {"_id": "n1", "body": "hello"}


@pytest.mark.parametrize("preference", ["nearest", "secondary", "primaryPreferred"])
def test_the_read_only_preference_comes_from_settings(
    make_app: AppFactory, preference: str
) -> None:
    mongo = started(make_app, {"MONGODB_READ_ONLY_PREFERENCE": preference}).database.mongo
    assert mongo.collection("notes", role="read_only").read_preference.mongos_mode == preference
    assert mongo.collection("notes").read_preference.mongos_mode == "primary"


def test_an_unknown_role_is_refused(make_app: AppFactory) -> None:
    mongo = started(make_app).database.mongo
    with pytest.raises(ValueError, match="unknown role 'owner'"):
        mongo.collection("notes", role="owner")  # type: ignore[arg-type]


def test_admin_role_uses_a_separate_client_only_when_an_admin_uri_is_set(
    make_app: AppFactory, mongodb_server: MongoServer
) -> None:
    shared = started(make_app).database.mongo
    assert shared.collection("x", role="admin").database.client is shared.client

    mongo = started(make_app, {"MONGODB_ADMIN_URI": mongodb_server.uri}).database.mongo
    admin = mongo.collection("x", role="admin")
    assert admin.database.client is mongo.admin_client
    assert admin.database.client is not mongo.client
    assert admin.database.name == mongo.db.name
    admin.insert_one({"_id": 1})
    assert mongo.collection("x").find_one({"_id": 1}) == {"_id": 1}
    mongo.close()
    mongo.close()


def test_retry_settings_reach_the_client(make_app: AppFactory) -> None:
    default = started(make_app).database.mongo.client.options
    assert (default.retry_writes, default.retry_reads) == (True, True)
    overrides = {"MONGODB_RETRY_WRITES": "false", "MONGODB_RETRY_READS": "false"}
    off = started(make_app, overrides).database.mongo.client.options
    assert (off.retry_writes, off.retry_reads) == (False, False)


def test_mongodb_down_means_503_and_the_same_app_recovers(
    make_app: AppFactory, mongodb_server: MongoServer, probe_modules: str
) -> None:
    app = make_app(
        {
            "MODULES_PACKAGES": f"modules,{probe_modules}",
            "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "300",
        }
    )
    manager: AppManager = manager_of(app)
    mongo: MongoStore = manager.database.mongo
    client = app.test_client()
    assert client.get("/public/dbprobe/mongodb").status_code == 200

    with stopped(mongodb_server):
        with pytest.raises(ServerSelectionTimeoutError) as caught:
            mongo.collection("probe").find_one({})
        assert manager.dependency_of(caught.value) == "mongodb"
        problem(client.get("/public/dbprobe/mongodb"), 503, "DEPENDENCY_UNAVAILABLE")
        ready = client.get("/health/ready").get_json()
        assert ready["checks"]["mongodb"]["status"] == "error"
        assert ready["checks"]["postgres"]["status"] == "ok"

    # pymongo rediscovers the server in the background; bounded wait, same app.
    assert eventually(lambda: client.get("/public/dbprobe/mongodb").status_code == 200)
    assert client.get("/health/ready").status_code == 200
