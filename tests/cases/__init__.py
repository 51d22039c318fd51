"""Isolation and role cases, one module per dashboard/API area, gathered by tests/test_isolation.py and
tests/test_roles.py.

A module may define any of:
- ``objects(source, objects) -> dict``: more objects of alice's workspace, by placeholder name
  (``objects`` holds those made so far: workspace, slug, source, destination, subscription, ...);
- ``DASHBOARD_CASES``: (URL name, method, URL kwargs) as in tests/test_isolation.py;
- ``API_OBJECT_CASES`` / ``API_LIST_CASES`` / ``API_GLOBAL_ROUTES``: as in tests/test_isolation.py;
- ``ROLE_CASES``: (URL name, URL kwargs, POST data, the least role allowed) for the dashboard's POST pages;
- ``API_ROLE_CASES``: (method, API URL, JSON body, the least role allowed) for API calls that write;
- ``READ_ONLY_POSTS``: URL names of dashboard pages that take a POST yet change nothing (previews);
- ``API_NOT_WORKSPACE_WRITES``: (route name, method) of API writes that change nothing of a workspace;
see tests/test_roles.py.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]


def gather(name: str) -> list:
    return [case for module in modules() for case in getattr(module, name, [])]
