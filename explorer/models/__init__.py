"""Importing this package registers every family: each module here is one (the registry orders them as the
book does, by section), so adding a network is adding its module."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
