"""Field types for request models that say what is wrong in a client's words and keep what
the client sent.

pydantic's ``HttpUrl`` answers "input should be a valid URL, relative URL without a base" and
gives back ``https://example.com/`` for ``https://example.com``: the stored value is not the
one sent, and a client comparing the two sees a change it did not make. :data:`HttpUrl` here
is the text as sent, checked to be an absolute ``http``/``https`` URL (``format: uri`` in the
JSON Schema and /openapi.json)::

    class NewBookmark(BaseModel):
        url: HttpUrl  # "must be an http or https URL, like https://example.com/page"
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

__all__ = ["URL_MAX", "HttpUrl", "http_url"]

#: The longest URL accepted (what browsers and most servers handle).
URL_MAX = 2083


def http_url(value: str) -> str:
    """``value`` unchanged when it is an absolute http(s) URL with a host; else ValueError."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port raises on a bad one
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(char.isspace() or ord(char) < 32 for char in value)
    ):
        raise ValueError("must be an http or https URL, like https://example.com/page")
    return value


#: An absolute http(s) URL, kept exactly as sent.
HttpUrl = Annotated[
    str,
    Field(min_length=1, max_length=URL_MAX, json_schema_extra={"format": "uri"}),
    AfterValidator(http_url),
]
