"""``graph-vcr-proxy schema [MODEL]``: the JSON Schema of the models, as pydantic writes it.

For editors and docs: the schema a request or response body must satisfy, with Graph's
camelCase names. Every pydantic model in ``models.py`` is offered, except the bases other
models there derive from (``GraphModel`` alone describes no body).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from proxy_addons.graph import models

TITLE = "graph-vcr-proxy models"


class UnknownModel(LookupError):
    """A model name that is not one of ours; ``str()`` lists the names there are."""


def model_classes() -> dict[str, type[BaseModel]]:
    """Name -> model, for every body model in ``models.py``, in name order."""
    defined = [
        cls
        for _, cls in inspect.getmembers(models, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == models.__name__
    ]
    bases = {base for cls in defined for base in cls.__mro__[1:]}
    return {cls.__name__: cls for cls in defined if cls not in bases}


def schema_of(name: str | None) -> dict[str, Any]:
    """One model's ``model_json_schema()``, or every model's under ``$defs`` when ``name``
    is None (pydantic's ``models_json_schema``)."""
    found = model_classes()
    if name is None:
        _, schema = models_json_schema(
            [(model, "validation") for model in found.values()], title=TITLE
        )
        return schema
    model = found.get(name) or next(
        (m for n, m in found.items() if n.lower() == name.lower()), None
    )
    if model is None:
        raise UnknownModel(f"schema: no model {name!r}; models: {', '.join(found)}")
    return model.model_json_schema()


def run_schema(name: str | None) -> int:
    print(json.dumps(schema_of(name), indent=2, ensure_ascii=False))
    return 0
