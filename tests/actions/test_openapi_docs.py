"""What a Python author documents is what /openapi.json shows, in Markdown: field comments
(``#:``) and attribute docstrings become descriptions, docstring markup does not leak raw into
summaries, and an action's 403 names the codes its roles and scopes can answer."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.testing import AppFactory
from tests.actions.conftest import ACTS_MODULE, ACTS_YAML, write_modules

DOCUMENTED = textwrap.dedent(
    '''
    from pydantic import BaseModel, Field

    from core.http.routes import Routes
    from core.module import BaseModule

    bp = Routes("documented", __name__)


    class Search(BaseModel):
        """What to look for, see :class:`~core.edge.fields.HttpUrl`."""

        #: Words the title must contain,
        #: all of them.
        words: str = ""
        limit: int = 10
        """At most this many, like ``?limit=5``."""
        given: int = Field(0, description="Said in Field.")
        plain: int = 0


    @bp.get("/public/documented/search", query=Search)
    def search(query: Search) -> None:
        """Find things: ``words`` in :func:`core.x.find` order.

        More on :class:`~a.b.Search`.
        """


    class Module(BaseModule):
        blueprint = bp
    '''
)


@pytest.fixture
def spec(make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    package = write_modules(
        tmp_path,
        monkeypatch,
        {"documented": (DOCUMENTED, None), "acts": (ACTS_MODULE, ACTS_YAML)},
    )
    client: FlaskClient = make_app({"MODULES_PACKAGES": f"modules,{package}"}).test_client()
    return client.get("/openapi.json").get_json()


def test_field_comments_and_attribute_docstrings_become_descriptions(spec: Any) -> None:
    operation = spec["paths"]["/public/documented/search"]["get"]
    described = {p["name"]: p.get("description") for p in operation["parameters"]}
    assert described == {
        "words": "Words the title must contain, all of them.",
        "limit": "At most this many, like `?limit=5`.",
        "given": "Said in Field.",
        "plain": None,
    }
    assert spec["components"]["schemas"]["Search"]["description"] == (
        "What to look for, see `HttpUrl`."
    )


def test_docstring_markup_does_not_leak_into_the_summary(spec: Any) -> None:
    operation = spec["paths"]["/public/documented/search"]["get"]
    assert operation["summary"] == "Find things: `words` in `core.x.find` order."


@pytest.mark.parametrize(
    ("action", "codes"),
    [
        ("acts.scoped", "`FORBIDDEN`, `INSUFFICIENT_SCOPE`"),
        ("acts.mixed", "`FORBIDDEN`, `INSUFFICIENT_SCOPE`"),
        ("acts.admin", "`FORBIDDEN`"),
    ],
)
def test_an_actions_403_names_what_its_roles_and_scopes_answer(
    spec: Any, action: str, codes: str
) -> None:
    forbidden = spec["paths"][f"/actions/{action}"]["post"]["responses"]["403"]
    assert forbidden["description"] == f"A problem: {codes}."


@pytest.mark.project_wide
@pytest.mark.parametrize("document", ["/openapi.json", "/asyncapi.json"])
def test_no_document_of_the_project_shows_raw_rest_markup(
    client: FlaskClient, document: str
) -> None:
    text = client.get(document).get_data(as_text=True)
    assert "``" not in text
    assert ":class:`" not in text
    assert ":func:`" not in text
