"""ActionManager: YAML-declared actions, checked at start-up, run through ``POST /actions/<name>``.

Declarations come from ``actions/*.yaml`` (application-wide), from ``actions.yaml`` in each
loaded module's package, and from modules' ``register_actions(actions)`` hook
(``actions.register({...})``). :meth:`ActionManager.load` checks them all (file format, names,
handlers and their signatures, JSON Schemas) and compiles the validators once; any problem
stops start-up with one :class:`~core.errors.StartupError` listing every problem by file, line
and action. The HTTP surface is :mod:`core.http.actions`; the format and the behaviour are
documented in ``docs/actions.md``.

Every execution of an audited action becomes an ``audit_log`` row through :attr:`audit`, a
background writer (:mod:`core.managers.actions.audit`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer

from config.settings import Settings
from core.edge.endpoint import Endpoint
from core.edge.principal import Principal
from core.edge.problems import DependencyOf
from core.errors import ApiError, NotFound, StartupError
from core.managers import spans
from core.managers.actions.audit import AuditWriter, Digest, postgres_sink
from core.managers.actions.declaration import Action, ActionContext
from core.managers.actions.executor import (
    AfterExecute,
    BeforeExecute,
    Execution,
    execute,
    finish,
)
from core.managers.actions.executor import refused as refused_execution
from core.managers.actions.loader import Catalog, Problem, SettingOf
from core.managers.admission import Caller
from core.managers.base import HealthResult, Manager
from core.managers.database import PostgresStore
from core.module import BaseModule

logger = logging.getLogger(__name__)

#: Application-wide declarations.
ACTIONS_DIR = Path(__file__).resolve().parents[3] / "actions"
#: How long close() waits for the audit writer to write what is queued.
AUDIT_CLOSE_TIMEOUT = 5.0


class ActionManager(Manager):
    """The registry of actions and their executor; ``app_manager.actions``."""

    name = "actions"

    def __init__(
        self,
        settings: Settings,
        postgres: PostgresStore,
        *,
        dependency_of: DependencyOf = lambda error: None,
        actions_dirs: Sequence[Path] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        #: Tells a failure of an unreachable store (503) from a bug (500).
        self.dependency_of = dependency_of
        self.actions_dirs = [ACTIONS_DIR] if actions_dirs is None else list(actions_dirs)
        self.audit = AuditWriter(postgres_sink(postgres), settings.audit_queue_size)
        #: Keyed digest of params in audit rows (``AUDIT_DIGEST_KEY``).
        self.digest = Digest.from_settings(settings)
        #: ``callback(action, context)`` run after roles/scopes, before params validation:
        #: the hook point for per-action rate limits. Raise an ApiError to refuse the call.
        self.before_execute: list[BeforeExecute] = []
        #: ``callback(execution)`` after every execution, whatever its outcome (metrics).
        self.after_execute: list[AfterExecute] = []
        #: A span per execution while tracing is on (None: no tracing code runs).
        self.tracer = tracer
        if tracer is not None:
            self.after_execute.append(_span_outcome)
        self._actions: dict[str, Action] = {}
        self._modules: list[BaseModule] = []
        self._declared: list[tuple[dict[str, Any], str, str | None]] = []
        self._catalog: Catalog | None = None
        self._setting: SettingOf = lambda name: None
        self._registering: BaseModule | None = None

    # -- start-up -------------------------------------------------------------------------

    def load(self, modules: Sequence[BaseModule], setting: SettingOf | None = None) -> None:
        """Read, check and compile every declaration; StartupError lists every problem.
        ``setting(NAME)`` reads the settings a ``rate_limit: {setting: NAME}`` names."""
        self._modules = list(modules)
        if setting is not None:
            self._setting = setting
        catalog = self._catalog = Catalog(self._setting)
        try:
            for path, package in self.declaration_files():
                catalog.add_file(path, package)
            for module in self._modules:
                self._registering = module
                module.register_actions(self)
        finally:
            self._catalog = self._registering = None
        if catalog.problems:
            raise StartupError(
                "invalid action declarations:\n"
                + "\n".join(f"  - {problem}" for problem in catalog.problems)
            )
        self._actions = dict(sorted(catalog.actions.items()))
        logger.debug("actions loaded", extra={"count": len(self._actions)})

    def register(self, declaration: Mapping[str, Any]) -> None:
        """Declare an action in code, from ``BaseModule.register_actions(actions)``.

        ``declaration`` has the keys of a YAML declaration; ``handler`` may be a function.
        """
        if self._catalog is None or self._registering is None:
            raise RuntimeError("actions are registered from BaseModule.register_actions only")
        package = _module_home(self._registering)[0]
        source = f"module {self._registering.name}"
        self._declared.append((dict(declaration), source, package))
        self._catalog.add(declaration, source, package)

    def declaration_files(self) -> list[tuple[Path, str | None]]:
        """``(file, package)`` of every declaration file, in load order."""
        files: list[tuple[Path, str | None]] = []
        for directory in self.actions_dirs:
            files.extend((path, None) for path in sorted(directory.glob("*.yaml")))
        for module in self._modules:
            package, directory = _module_home(module)
            if (directory / "actions.yaml").is_file():
                files.append((directory / "actions.yaml", package))
        return files

    def check(self) -> tuple[list[Action], list[Problem]]:
        """Check the declarations as they are on disk now (``flask actions check``)."""
        catalog = Catalog(self._setting)
        for path, package in self.declaration_files():
            catalog.add_file(path, package)
        for declaration, source, package in self._declared:
            catalog.add(declaration, source, package)
        return sorted(catalog.actions.values(), key=lambda a: a.name), catalog.problems

    # -- queries and execution --------------------------------------------------------------

    def find(self, name: str) -> Action | None:
        return self._actions.get(name)

    def get(self, name: str) -> Action:
        """The action called ``name``; 404 ``ACTION_NOT_FOUND`` when there is none."""
        action = self._actions.get(name)
        if action is None:
            raise NotFound(f"There is no action named {name[:100]!r}.", code="ACTION_NOT_FOUND")
        return action

    def all(self) -> list[Action]:
        """Every action, sorted by name."""
        return list(self._actions.values())

    def execute(self, action: Action, params: dict[str, Any], context: ActionContext) -> Any:
        """Run ``action`` for ``context.principal``: see :mod:`core.managers.actions.executor`."""
        if self.tracer is None:
            return self._execute(action, params, context)
        kind = spans.principal_kind(context.principal)
        attributes = {spans.ACTION: action.name, spans.PRINCIPAL_KIND: kind}
        with spans.span(self.tracer, f"action {action.name}", attributes):
            return self._execute(action, params, context)

    def _execute(self, action: Action, params: dict[str, Any], context: ActionContext) -> Any:
        return execute(
            action,
            params,
            context,
            before=self.before_execute,
            after=self.after_execute,
            audit=self.audit,
            digest=self.digest,
            dependency_of=self.dependency_of,
        )

    def refused(
        self, endpoint: Endpoint, caller: Caller, principal: Principal, error: ApiError
    ) -> None:
        """Admission refused an action's caller by its roles or scopes: like any execution's
        end, an audit row (``denied``) and the ``after_execute`` callbacks."""
        action = self._actions.get(endpoint.name) if endpoint.kind == "action" else None
        if action is None:
            return
        context = ActionContext(principal, caller.request_id, action.name)
        done = refused_execution(action, context, error)
        finish(done, None, datetime.now(UTC), after=self.after_execute, audit=self.audit)

    # -- manager contract -------------------------------------------------------------------

    def health(self) -> HealthResult:
        return {
            "status": "ok",
            "latency_ms": 0.0,
            "actions": len(self._actions),
            "audit": self.audit.stats(),
        }

    def close(self) -> None:
        self.audit.close(AUDIT_CLOSE_TIMEOUT)


def _module_home(module: BaseModule) -> tuple[str, Path]:
    """The package of a feature module and its directory (where its actions.yaml lives)."""
    return module.package, module.directory


def _span_outcome(done: Execution) -> None:
    """The action's span (current while the executor runs its ``after`` callbacks)."""
    current = trace.get_current_span()
    current.set_attribute(spans.ACTION_OUTCOME, done.outcome)
    current.set_attribute("http.response.status_code", done.status)
    if done.code is not None:
        spans.failed(current, done.code, done.status)
