"""core.edge.fields.HttpUrl: an absolute http(s) URL, refused in readable words and kept
exactly as sent (pydantic's own HttpUrl adds a trailing slash and answers in its terms)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from core.edge.fields import URL_MAX, HttpUrl
from core.edge.validation import Schema
from core.errors import ValidationFailed

MESSAGE = "must be an http or https URL, like https://example.com/page"


class Bookmark(BaseModel):
    url: HttpUrl


@pytest.mark.parametrize(
    "sent",
    ["https://example.com", "HTTPS://Example.com/a/?b=c&d=%20#e", "http://127.0.0.1:8080"],
)
def test_a_url_is_kept_exactly_as_sent(sent: str) -> None:
    assert Schema.of(Bookmark).load({"url": sent}).url == sent


@pytest.mark.parametrize(
    "sent",
    [
        "not a url",
        "example.com/page",
        "ftp://example.com",
        "javascript:alert(1)",
        "https://exa mple.com",
        "https://",
        "http://example.com:99999",
        "https://example.com/\nx",
        "https://example.com/" + "a" * URL_MAX,
    ],
)
def test_anything_else_is_refused_in_one_readable_line(sent: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        Schema.of(Bookmark).load({"url": sent})
    [error] = refused.value.extra["errors"]
    assert error["field"] == "/url"
    assert error["message"] in (MESSAGE, f"must be at most {URL_MAX} characters long")


def test_the_schema_says_uri() -> None:
    url = Schema.of(Bookmark).schema["properties"]["url"]
    assert (url["type"], url["format"], url["maxLength"]) == ("string", "uri", URL_MAX)
