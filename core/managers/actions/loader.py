"""Reading and checking declarations: YAML files and declarations made in code.

A :class:`Catalog` takes every declaration, keeps each problem it finds (with the file, the
line where the YAML says it, and the action) and compiles what is valid into
:class:`~core.managers.actions.declaration.Action` objects. Nothing stops at the first
problem, so start-up and ``flask actions check`` report all of them at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from core.edge.endpoint import Endpoint
from core.edge.principal import API_KEY, JWT, PUBLIC
from core.edge.validation import Schema, close_objects, compile_schema
from core.managers.actions.declaration import FILE_SCHEMA, Action, Handler
from core.managers.rate_limiter.limits import parse_limits

_FILE_VALIDATOR = Draft202012Validator(FILE_SCHEMA)
_ACTION_VALIDATOR = Draft202012Validator(FILE_SCHEMA["$defs"]["action"])
_ROOT = Path(__file__).resolve().parents[3]

Locate = Callable[[Sequence[str | int]], int | None]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a declaration; ``str()`` is the line printed to operators."""

    source: str
    line: int | None
    action: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        who = f" action {self.action!r}:" if self.action else ""
        return f"{where}:{who} {self.message}"


def display_path(path: Path) -> str:
    """``path`` relative to the project root when it is inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(_ROOT)) if resolved.is_relative_to(_ROOT) else str(resolved)


#: ``setting(NAME)``: the value of the setting of that public name, None when there is none.
SettingOf = Callable[[str], Any]


class Catalog:
    """Declarations checked and compiled; ``problems`` lists everything that is wrong."""

    def __init__(self, setting: SettingOf = lambda name: None) -> None:
        #: The value of a setting by its public name (None: no such setting), for limits
        #: declared as ``rate_limit: {setting: NAME}``.
        self.setting = setting
        self.actions: dict[str, Action] = {}
        self.problems: list[Problem] = []
        self._names: dict[str, str] = {}

    def add_file(self, path: Path, package: str | None = None) -> None:
        """Every declaration of a YAML file; ``package`` anchors relative handlers."""
        source = display_path(path)
        try:
            data, root = _parse_yaml(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(Problem(source, None, None, f"cannot be read: {exc}"))
            return
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            self.problems.append(Problem(source, line, None, f"invalid YAML: {reason}"))
            return
        if root is None:
            message = "the file is empty; expected a mapping with an 'actions' list"
            self.problems.append(Problem(source, None, None, message))
            return
        for line, key in _duplicate_keys(root):
            self.problems.append(Problem(source, line, None, f"duplicate key {key!r}"))
        actions = data.get("actions") if isinstance(data, dict) else None
        for declaration in actions if isinstance(actions, list) else []:
            if isinstance(declaration, dict) and "name" in declaration:
                declaration["name"] = absolute_name(declaration["name"], package)

        def locate(path: Sequence[str | int]) -> int | None:
            return _line_of(root, path)

        def within(index: int) -> Locate:
            return lambda path: locate(["actions", index, *path])

        invalid: set[int] = set()
        for error in _FILE_VALIDATOR.iter_errors(data):
            where = list(error.absolute_path)
            index = where[1] if len(where) > 1 and where[0] == "actions" else None
            name = None
            if isinstance(index, int):
                invalid.add(index)
                name = _name_of(data["actions"][index])
            message = _schema_message(where[2:], error.message)
            self.problems.append(Problem(source, locate(where), name, message))
        if not isinstance(actions, list):
            return
        for index, declaration in enumerate(actions):
            if index not in invalid:
                self._compile(declaration, source, package, within(index))

    def add(self, declaration: Mapping[str, Any], source: str, package: str | None = None) -> None:
        """A declaration made in code; its ``handler`` may be a callable."""
        handler = declaration.get("handler")
        checked = dict(declaration)
        if "name" in checked:
            checked["name"] = absolute_name(checked["name"], package)
        if callable(handler):
            checked["handler"] = "code:handler"
        errors = sorted(_ACTION_VALIDATOR.iter_errors(checked), key=lambda e: e.message)
        for error in errors:
            message = _schema_message(list(error.absolute_path), error.message)
            self.problems.append(Problem(source, None, _name_of(declaration), message))
        if not errors:
            self._compile(checked | {"handler": handler}, source, package, lambda path: None)

    # -- one declaration ------------------------------------------------------------------

    def _compile(
        self, decl: dict[str, Any], source: str, package: str | None, locate: Locate
    ) -> None:
        name: str = decl["name"]
        found: list[Problem] = []

        def problem(message: str, *path: str | int) -> None:
            found.append(Problem(source, locate(path), name, message))

        if name in self._names:
            problem(f"duplicate action name: also declared at {self._names[name]}", "name")
        else:
            self._names[name] = _at(source, locate(()))
        auth, roles, scopes = decl["auth"], decl.get("roles", []), decl.get("scopes", [])
        if auth == PUBLIC and (roles or scopes):
            problem("a public action cannot require roles or scopes", "auth")
        if auth == JWT and scopes:
            problem("scopes limit API keys; a jwt action is only called by users", "scopes")
        if auth == API_KEY and roles:
            problem("roles govern users; an api_key action is only called by API keys", "roles")

        rate_limit = decl.get("rate_limit")
        if isinstance(rate_limit, dict):  # {setting: NAME}: the limit is that setting's value
            value = self.setting(rate_limit["setting"])
            if not isinstance(value, str) or not value:
                problem(
                    f"rate_limit: no setting {rate_limit['setting']} holds a limit", "rate_limit"
                )
            rate_limit = value if isinstance(value, str) and value else None
        if rate_limit is not None:
            try:
                parse_limits(rate_limit)  # checked here, with its line: the RATE_LIMIT_* grammar
            except ValueError as exc:
                problem(f"rate_limit: {exc}", "rate_limit")
        params = dict(decl.get("params") or {"type": "object"})
        params.setdefault("type", "object")
        if params["type"] != "object":
            problem("params must describe a JSON object (type: object)", "params", "type")
        params = close_objects(params)
        params_validator = _compile_schema(params, "params", problem)
        result = decl.get("result")
        result_validator = None if result is None else _compile_schema(result, "result", problem)
        handler = decl["handler"]
        if callable(handler):
            handler_ref = f"{getattr(handler, '__module__', '?')}:{handler.__qualname__}"
        else:
            try:
                handler_ref = absolute_handler(handler, package)
                handler = resolve_handler(handler_ref)
            except ValueError as exc:
                handler_ref = handler
                problem(str(exc), "handler")
        if callable(handler):
            try:
                check_signature(handler)
            except ValueError as exc:
                problem(str(exc), "handler")

        self.problems.extend(found)
        if found or params_validator is None or (result is not None and result_validator is None):
            return
        properties = params.get("properties", {})
        description = decl["description"]
        self.actions[name] = Action(
            name=name,
            description=description,
            handler=handler,
            handler_ref=handler_ref,
            endpoint=Endpoint(
                kind="action",
                name=name,
                summary=description.strip().splitlines()[0],
                description=description.strip(),
                auth=auth,
                roles=frozenset(roles),
                scopes=frozenset(scopes),
                rate_limit=rate_limit,
                input=Schema(params, validator=params_validator),
                errors=dict(decl.get("errors", {})),
                idempotent=decl.get("idempotent", False),
            ),
            params=params,
            result=result,
            audit=decl.get("audit", True),
            timeout=decl.get("timeout"),
            source=_at(source, locate(())),
            params_validator=params_validator,
            result_validator=result_validator,
            defaults={
                key: schema["default"]
                for key, schema in properties.items()
                if isinstance(schema, dict) and "default" in schema
            },
        )


# -- names and handlers -------------------------------------------------------------------


def absolute_name(name: Any, package: str | None) -> Any:
    """``.create`` in package ``modules.notes`` -> ``notes.create``: a module's actions are
    named after its package, so a copy under another name declares its own."""
    if isinstance(name, str) and name.startswith(".") and package:
        return package.rpartition(".")[2] + name
    return name


def absolute_handler(ref: str, package: str | None) -> str:
    """``.handlers:create`` in package ``modules.notes`` -> ``modules.notes.handlers:create``."""
    module_name, _, attribute = ref.partition(":")
    if not module_name.startswith("."):
        return ref
    if not package:
        raise ValueError(f"relative handler {ref!r} is only allowed in a module's actions.yaml")
    return f"{importlib.util.resolve_name(module_name, package)}:{attribute}"


def resolve_handler(ref: str) -> Handler:
    """Import the function of ``package.module:function``; ValueError says what is wrong."""
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            raise ValueError(f"handler {ref!r}: module {module_name!r} not found") from None
        raise ValueError(f"handler {ref!r}: importing {module_name} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any import failure is a start-up problem to report
        raise ValueError(
            f"handler {ref!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    handler = getattr(module, attribute, None)
    if handler is None:
        raise ValueError(f"handler {ref!r}: {module_name} has no attribute {attribute!r}")
    if not callable(handler):
        raise ValueError(f"handler {ref!r} is not callable")
    return handler  # type: ignore[no-any-return]


def check_signature(handler: Callable[..., Any]) -> None:
    """The handler must be a plain function callable as ``handler(params, context)``."""
    if inspect.iscoroutinefunction(handler):
        raise ValueError("async handlers are not supported; write a plain function")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # no introspectable signature (a builtin): trust it
    try:
        signature.bind(None, None)
    except TypeError:
        raise ValueError(
            f"handler {handler.__qualname__}{signature} cannot be called as "
            "handler(params, context)"
        ) from None


# -- schemas ------------------------------------------------------------------------------


def _compile_schema(schema: Any, key: str, problem: Callable[..., None]) -> Validator | None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        problem(f"{key} is not a valid JSON Schema: {exc.message}", key, *exc.path)
        return None
    for pointer, ref in _refs(schema):
        if not ref.startswith("#"):
            problem(f"{key}: only local $ref are supported, not {ref!r}", key, *pointer)
            return None
        if not _pointer_exists(schema, ref[1:]):
            problem(f"{key}: $ref {ref!r} points to nothing", key, *pointer)
            return None
    return compile_schema(schema)


def _refs(
    node: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield (*path, key), value
            else:
                yield from _refs(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, (*path, index))


def _pointer_exists(document: Any, pointer: str) -> bool:
    node = document
    for raw in filter(None, pointer.split("/")):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


# -- YAML with line numbers ---------------------------------------------------------------


def _parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (nodes carry the line marks)."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    finally:
        loader.dispose()


def _line_of(node: yaml.Node, path: Sequence[str | int]) -> int:
    """The 1-based line of the deepest node of ``path`` that exists."""
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _duplicate_keys(node: yaml.Node) -> Iterator[tuple[int, str]]:
    """PyYAML keeps the last of two equal keys silently; a declaration must not."""
    stack, seen_nodes = [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        yield key.start_mark.line + 1, key.value
                    keys.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _schema_message(path: Sequence[str | int], message: str) -> str:
    """``auth: 'x' is not one of ...``: the key inside the declaration, then what is wrong."""
    inner = "/".join(str(part) for part in path)
    return f"{inner}: {message}" if inner else message


def _name_of(declaration: Any) -> str | None:
    name = declaration.get("name") if isinstance(declaration, Mapping) else None
    return name if isinstance(name, str) else None


def _at(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line else source
