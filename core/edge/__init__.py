"""The floor every layer stands on, below the managers: who is calling and what they may do,
strict JSON, the one error mapper and the problem document, the bearer check. It imports only
``core.errors``.

The code is in :mod:`.principal`, :mod:`.json`, :mod:`.problems` and :mod:`.bearer`.
"""

from core.edge.bearer import bearer_matches
from core.edge.json import MAX_DEPTH, check_json_value, load_json
from core.edge.principal import (
    API_KEY,
    JWT,
    JWT_OR_API_KEY,
    OPERATOR,
    POLICIES,
    PUBLIC,
    Principal,
    refusal,
)
from core.edge.problems import (
    PROBLEM_JSON,
    DependencyOf,
    api_error,
    problem_document,
    problem_type,
)

__all__ = [
    "API_KEY",
    "JWT",
    "JWT_OR_API_KEY",
    "MAX_DEPTH",
    "OPERATOR",
    "POLICIES",
    "PROBLEM_JSON",
    "PUBLIC",
    "DependencyOf",
    "Principal",
    "api_error",
    "bearer_matches",
    "check_json_value",
    "load_json",
    "problem_document",
    "problem_type",
    "refusal",
]
