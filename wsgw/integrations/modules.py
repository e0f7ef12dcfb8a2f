"""Import handler modules per code folder, so two functions' `app.py` in different CodeUris stay distinct.

On Lambda every function has its own process and task root. Here they share one interpreter, where a module
name is loaded once: two SAM functions `Handler: app.handler` with `CodeUri: connect/` and `CodeUri: send/`
would both get the first `app`. So each import runs with its folder first on sys.path, and module names that
folder provides but another handler folder already loaded are set aside during the import and put back
after; the new function's modules then live on through its handler's references. The one gap: an `import x`
executed later *inside* a function body resolves through sys.modules, i.e. to the first folder's `x`.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType

log = logging.getLogger("wsgw.integrations")

_LOCK = threading.RLock()
_FOLDERS: set[Path] = set()                          # every folder handler modules were imported from
_LOADED: dict[tuple[Path, str], ModuleType] = {}     # (folder, module name) -> the module it gave


def import_from(folder: Path, module_name: str) -> ModuleType:
    """Import `module_name` as Lambda would with `folder` as task root; the same pair gives the same module."""
    root = folder.resolve()
    with _LOCK:
        cached = _LOADED.get((root, module_name))
        if cached is not None:
            return cached
        _FOLDERS.add(root)
        entry = str(root)
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
        provided = _top_level_names(root)
        hidden = {name: module for name, module in list(sys.modules.items())
                  if name.partition(".")[0] in provided and _owner(module) not in (None, root)}
        for name in hidden:
            del sys.modules[name]
        if module_name.partition(".")[0] in {n.partition(".")[0] for n in hidden}:
            log.info("module '%s' from %s is loaded separately from the one of the same name in %s", module_name,
                     root, _owner(hidden.get(module_name) or next(iter(hidden.values()))))
        try:
            module = importlib.import_module(module_name)
        finally:
            sys.modules.update(hidden)
        _LOADED[(root, module_name)] = module
        return module


def _top_level_names(folder: Path) -> set[str]:
    try:
        return {p.stem if p.suffix == ".py" else p.name for p in folder.iterdir()
                if p.suffix == ".py" or (p.is_dir() and p.name.isidentifier())}
    except OSError:
        return set()


def _owner(module: ModuleType) -> Path | None:
    """The handler folder a module was loaded from (the deepest one), or None (stdlib, site-packages …)."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    try:
        path = Path(file).resolve()
    except OSError:
        return None
    best: Path | None = None
    for folder in _FOLDERS:
        if path.is_relative_to(folder) and (best is None or len(folder.parts) > len(best.parts)):
            best = folder
    return best
