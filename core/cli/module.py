"""``flask module new NAME``: scaffold a working feature module and its tests.

Writes ``modules/NAME/`` (a typed route, an action with its YAML and handler, a MongoDB store
with an index, a settings model, a migration, a Socket.IO event) and ``tests/NAME/`` from the
templates in ``templates/module/``, every name derived from NAME, and documents the module's
settings in ``.env.example``. A bad or taken name is refused with one line; nothing is written.
A name is taken by a module, or by the framework's storage: a MongoDB collection a loaded
module or the framework declares, a Redis key namespace (core/managers/names.py); the new
module's data would be written there.
"""

from __future__ import annotations

import importlib
import keyword
import re
from collections.abc import Mapping
from pathlib import Path
from string import Template

import click
from flask.cli import AppGroup

from core.app_manager import ROOT, AppManager, get_app_manager
from core.managers.names import FRAMEWORK_STORAGE

module_cli = AppGroup("module", help="Feature modules.")
COMMANDS = [module_cli]

TEMPLATES = Path(__file__).resolve().parent / "templates" / "module"
#: Lower snake case, 2-20 characters: a package, an action prefix and an env prefix at once.
_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_RESERVED = frozenset({"core", "config", "modules", "tests", "system", "app", "actions"})


class ScaffoldError(click.ClickException):
    """Why a module cannot be scaffolded under that name (one line)."""


def storage_names(manager: AppManager) -> dict[str, str]:
    """Names the framework's and the loaded modules' storage takes: name -> what uses it."""
    names = dict(FRAMEWORK_STORAGE)
    for collection in manager.database.mongo.declared_collections():
        names.setdefault(collection, f"the MongoDB collection {collection!r}")
    return names


def check_name(
    name: str,
    modules_dir: Path,
    tests_dir: Path,
    taken: set[str],
    storage: Mapping[str, str] | None = None,
) -> None:
    if not (_NAME.fullmatch(name) and 2 <= len(name) <= 20) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"{name!r} is not a module name: use 2-20 characters of lower snake case "
            "(a-z, 0-9, single underscores), starting with a letter"
        )
    if name in _RESERVED:
        raise ScaffoldError(f"{name!r} is reserved; choose another name")
    if name in taken or (modules_dir / name).exists():
        raise ScaffoldError(f"module {name!r} already exists in {modules_dir}")
    if storage and name in storage:
        raise ScaffoldError(
            f"{name!r} is {storage[name]}: a module of that name would write into it; "
            "choose another name"
        )
    if (tests_dir / name).exists():
        raise ScaffoldError(f"{tests_dir / name} already exists")


def render(name: str, root: Path, modules_dir: Path) -> dict[Path, str]:
    """Every file of the new module and its tests: path -> content."""
    values = {
        "name": name,
        "Name": "".join(part.capitalize() for part in name.split("_")),
        "NAME": name.upper(),
        "Title": name.replace("_", " ").capitalize(),
    }
    files: dict[Path, str] = {}
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATES).with_suffix("")
        parts = [part.replace("__name__", name) for part in relative.parts]
        base = modules_dir if parts[0] == "modules" else root / parts[0]
        files[base.joinpath(*parts[1:])] = Template(template.read_text()).substitute(values)
    return files


def env_example_block(name: str) -> str:
    """The .env.example lines of the scaffolded settings (tests keep the file complete)."""
    return (
        f"\n# {name} module (modules/{name}/settings.py)\n"
        f"# Items a list answers when the caller does not say (1-100).\n"
        f"{name.upper()}_PAGE_SIZE=20\n"
        f"# Items one user may keep at once (a quota: racing creates never pass it).\n"
        f"{name.upper()}_MAX_ITEMS=1000\n"
    )


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


@module_cli.command("new")
@click.argument("name")
def new(name: str) -> None:
    """Scaffold modules/NAME/ and tests/NAME/ (then: pytest tests/NAME)."""
    manager = get_app_manager()
    package = importlib.import_module(manager.settings.modules_packages[0])
    modules_dir = Path(next(iter(package.__path__)))
    taken = {item["name"] for item in manager.modules.status()}
    check_name(name, modules_dir, ROOT / "tests", taken, storage_names(manager))
    files = render(name, ROOT, modules_dir)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        click.echo(f"created {_shown(path)}")
    env_example = ROOT / ".env.example"
    if env_example.is_file():
        with env_example.open("a", encoding="utf-8") as file:
            file.write(env_example_block(name))
        click.echo(f"updated {_shown(env_example)}")
    click.echo(f"next: pytest tests/{name}")
