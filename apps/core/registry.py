"""App registry: `@register_app(name)` beside each app; no second list to edit."""
import importlib
import importlib.util
import pkgutil

from apps.core.errors import UserError

_APPS = {}


def register_app(name):
    """Class decorator registering an App subclass under `name`."""

    def decorator(cls):
        if name in _APPS and _APPS[name] is not cls:
            raise ValueError(f"app {name!r} is registered twice")
        cls.name = name
        _APPS[name] = cls
        return cls

    return decorator


def _import_all_apps():
    """Import apps/<name>/app.py of every package under apps/ (a package without one is not an app)."""
    import apps

    for info in pkgutil.iter_modules(apps.__path__):
        if info.ispkg and info.name != "core" and importlib.util.find_spec(f"apps.{info.name}.app") is not None:
            importlib.import_module(f"apps.{info.name}.app")


def _import_app(name):
    """Import apps/<name>/app.py alone, if there is one: a command needs its own app only (importing every
    app added 1-2 CPU-seconds to each start)."""
    if not name.isidentifier() or name in ("core", "__main__"):
        return
    try:
        spec = importlib.util.find_spec(f"apps.{name}.app")
    except ModuleNotFoundError:  # no package apps/<name>: get_app lists the names
        return
    if spec is not None:
        importlib.import_module(f"apps.{name}.app")  # its own errors (a missing dependency) are its own


def list_apps():
    _import_all_apps()
    return sorted(_APPS)


def get_app(name):
    if name not in _APPS:
        _import_app(name)
    if name not in _APPS:
        _import_all_apps()
    if name not in _APPS:
        raise UserError(f"unknown app {name!r}; choose one of: {', '.join(sorted(_APPS))}")
    return _APPS[name]
