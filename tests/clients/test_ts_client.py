"""A typed TypeScript client generated from the served ``/openapi.json`` (openapi-typescript +
openapi-fetch, pinned in tests/clients/ts), compiled strictly with ``tsc`` and run against the
app: register, log in, an action, a paged list, a validation problem. A schema a client
cannot use fails the build; one that lies fails the run."""

from __future__ import annotations

import pytest
import requests

from tests.support import ts_client

pytestmark = [pytest.mark.project_wide, pytest.mark.timeout(300)]


def test_the_generated_client_compiles_and_walks_the_api(live_server: str) -> None:
    document = requests.get(f"{live_server}/openapi.json", timeout=10).json()
    schema = ts_client.generate(document)
    assert "export interface paths" in schema.read_text()
    ts_client.compile_program()

    seen = ts_client.run_program(live_server)

    assert seen["username"] == seen["expected"]
    assert seen["titles"] == ["three", "two", "one"]
    assert seen["pages"] == 2
    assert seen["refused"] == {"status": 400, "code": "VALIDATION_ERROR"}


def test_a_schema_a_client_cannot_use_fails_the_build(live_server: str) -> None:
    document = requests.get(f"{live_server}/openapi.json", timeout=10).json()
    # What a broken route description would do: the login answer loses its token.
    answer = document["paths"]["/public/login"]["post"]["responses"]["200"]
    reference = answer["content"]["application/json"]["schema"]["$ref"]
    login = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    del login["properties"]["access_token"]
    login["required"].remove("access_token")
    ts_client.generate(document)
    with pytest.raises(RuntimeError, match="access_token"):
        ts_client.compile_program()
