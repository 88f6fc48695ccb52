"""Notes: per-user notes in MongoDB, published as actions. Copy this module to start a new one
(or scaffold one with ``flask --app app module new NAME``).

- ``actions.yaml``: the actions (``.create``, ``.list``, ``.delete``: named after this package,
  so ``notes.create`` here), their auth and the JSON Schema of their params; the framework
  validates, authenticates, rate-limits and audits;
- ``handlers.py``: what each action runs, ``handler(params, context)``;
- ``module.py``: the ``BaseModule`` subclass, re-exported here (where discovery looks for it);
- ``store.py``: the collection named after this package, owned by this module; every query is
  scoped to the owner, so a user never sees or deletes another user's notes.

Nothing here names the package: imports are relative and the collection, the service and the
actions take the package's name, so a copy under another name owns its own data.
"""

from .module import NotesModule

__all__ = ["NotesModule"]
