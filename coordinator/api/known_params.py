"""An API route refuses query parameters it does not declare (422 naming them): a misspelt
filter (`?stat=failed`) would otherwise be dropped, and the answer look like the filtered one."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel


def declared_query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route reads, its dependencies' included; a parameter model
    (`Annotated[Model, Query()]`) stands for its fields."""
    names: set[str] = set()
    for field in dependant.query_params:
        model = field.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names.update(info.alias or name for name, info in model.model_fields.items())
        else:
            names.add(field.alias)
    for sub in dependant.dependencies:
        names |= declared_query_names(sub)
    return frozenset(names)


def refuse_unknown_query(request: Request, declared: frozenset[str]) -> None:
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in declared]
    if unknown:
        takes = ", ".join(sorted(declared)) or "none"
        detail = [
            {
                "type": "extra_forbidden",
                "loc": ["query", name],
                "msg": f"unknown query parameter (this route takes: {takes})",
                "input": None,
            }
            for name in unknown
        ]
        raise HTTPException(status_code=422, detail=detail)
