"""The one loader of user code named as ``package.module:attr`` (plug-in cost models, oracles, networks).

``load_object(spec, where=...)`` imports the module (also from ``search_dir``, for code that
sits beside a design file), reads the attribute, and reports every failure as one
:class:`~codesign.errors.UserError` line that starts with ``where`` and names the spec.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from codesign.errors import PluginError


def split_spec(spec: str) -> tuple[str, str] | None:
    """``("package.module", "attr")`` of ``package.module:attr``, or ``None`` when ``spec`` has no colon."""
    if ":" not in spec:
        return None
    module_name, _, attr = spec.partition(":")
    return module_name, attr


def load_object(spec: str, *, where: str, search_dir: str | Path | None = None, error: type[Exception] = PluginError) -> Any:
    """The object named by ``package.module:attr``.

    Args:
        spec: ``package.module:attr``, or ``path/to/file.py:attr`` (relative to ``search_dir``).
        where: how the caller names the setting in messages (``"design.toml: cost_model.plugins entry 'x:y'"``).
        search_dir: a folder to look in too (a design file's own folder), before ``sys.path``.
        error: the :class:`UserError` subclass to raise.
    """
    parts = split_spec(spec)
    if parts is None or not all(parts):
        raise error(f"{where}: expected 'package.module:attr'")
    module_name, attr = parts
    if module_name.endswith(".py"):
        return _attribute(_load_file(module_name, where=where, search_dir=search_dir, error=error), module_name, attr,
                          where=where, error=error)
    folder = str(Path(search_dir).resolve()) if search_dir is not None else None
    added = folder is not None and folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an ImportError, or the module's own code failing
        raise error(f"{where}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(folder)
    return _attribute(module, module_name, attr, where=where, error=error)


def _attribute(module: Any, module_name: str, attr: str, *, where: str, error: type[Exception]) -> Any:
    try:
        return getattr(module, attr)
    except AttributeError:
        raise error(f"{where}: module {module_name!r} has no attribute {attr!r}") from None


#: Modules loaded from files, by resolved path: (modification time, module).
_FILE_MODULES: dict[str, tuple[float, Any]] = {}


def _load_file(path_text: str, *, where: str, search_dir: str | Path | None, error: type[Exception]) -> Any:
    """The module of the Python file ``path_text`` (relative to ``search_dir``), loaded again when it changed."""
    path = Path(path_text).expanduser()
    if not path.is_absolute() and search_dir is not None:
        path = Path(search_dir) / path
    path = path.resolve()
    if not path.is_file():
        raise error(f"{where}: no such Python file {str(path)!r}")
    mtime = path.stat().st_mtime
    cached = _FILE_MODULES.get(str(path))
    if cached is not None and cached[0] == mtime:
        return cached[1]
    name = f"codesign_user_{path.stem}_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    added = str(path.parent) not in sys.path
    if added:
        sys.path.insert(0, str(path.parent))  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise error(f"{where}: cannot load {str(path)!r}: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(path.parent))
    _FILE_MODULES[str(path)] = (mtime, module)
    return module


def load_entry_point(group: str, name: str, *, where: str, error: type[Exception] = PluginError) -> Any:
    """The object registered as ``name`` in the entry-point ``group``."""
    matches = [ep for ep in entry_points(group=group) if ep.name == name]
    if not matches:
        raise error(f"{where}: expected 'package.module:attr' or an entry point in group {group!r}; none is named {name!r}")
    try:
        return matches[0].load()
    except Exception as exc:
        raise error(f"{where}: entry point failed to load: {type(exc).__name__}: {exc}") from None


def instantiate(obj: Any, *, where: str, error: type[Exception] = PluginError, **options) -> Any:
    """A class is built with ``options`` (none for plug-ins); anything else is returned as is."""
    if not isinstance(obj, type):
        return obj
    try:
        return obj(**options)
    except Exception as exc:
        raise error(f"{where}: constructing {obj.__name__}() failed: {type(exc).__name__}: {exc}") from None
