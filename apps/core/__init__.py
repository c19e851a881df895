"""The shared framework: registry, config, the App contract and the one runner."""
from apps.core.app import App
from apps.core.errors import UserError
from apps.core.registry import get_app, list_apps, register_app

__all__ = ["App", "UserError", "get_app", "list_apps", "register_app"]
