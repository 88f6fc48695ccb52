"""The floor every layer stands on, below the managers: who is calling and what they may do,
the one endpoint spec, the one validation path, strict JSON, the one error mapper and the
problem document, the one ``Authorization`` parser. It imports only ``core.errors``.

The code is in :mod:`.principal`, :mod:`.endpoint`, :mod:`.validation`, :mod:`.json`,
:mod:`.problems` and :mod:`.bearer`.
"""

from core.edge.bearer import bearer_token, token_matches
from core.edge.endpoint import Endpoint, Setting
from core.edge.json import MAX_DEPTH, check_json_value, load_json
from core.edge.principal import (
    API_KEY,
    JWT,
    JWT_OR_API_KEY,
    OPERATOR,
    OPTIONAL,
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
from core.edge.validation import MAX_ERRORS, Schema, load_model, validate

__all__ = [
    "API_KEY",
    "JWT",
    "JWT_OR_API_KEY",
    "MAX_DEPTH",
    "MAX_ERRORS",
    "OPERATOR",
    "OPTIONAL",
    "POLICIES",
    "PROBLEM_JSON",
    "PUBLIC",
    "DependencyOf",
    "Endpoint",
    "Principal",
    "Schema",
    "Setting",
    "api_error",
    "bearer_token",
    "check_json_value",
    "load_json",
    "load_model",
    "problem_document",
    "problem_type",
    "refusal",
    "token_matches",
    "validate",
]
