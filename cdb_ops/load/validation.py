"""Turn pydantic validation errors into ConfigErrors that name the file, the line and the fix."""

from __future__ import annotations

import difflib
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cdb_ops.errors import ConfigError, ConfigErrors
from cdb_ops.load.yamlsource import YamlDocument


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X; Annotated[X, ...] -> X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else args[0]
        else:
            return tp


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of `loc` (to suggest the valid keys)."""
    current: Any = model
    for part in loc[:-1]:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def config_errors_from(exc: ValidationError, doc: YamlDocument, model: type[BaseModel]) -> ConfigErrors:
    errors: list[ConfigError] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic adds the union member / validator name to loc for some errors: drop those parts
        loc = tuple(p for p in loc if p not in ("list[str]", "str", "int", "dict[str,str]"))
        line = doc.line_of(loc)
        where = _dotted(loc)
        etype = err["type"]
        if etype == "extra_forbidden":
            key = str(loc[-1])
            owner = _model_at(model, loc)
            known = sorted(owner.model_fields) if owner else []
            close = difflib.get_close_matches(key, known, n=1)
            remedy = f"did you mean {close[0]!r}?" if close else ""
            if known:
                remedy = (remedy + " " if remedy else "") + "valid keys here: " + ", ".join(known)
            errors.append(ConfigError(f"unknown key {where!r}", remedy, file=str(doc.path), line=line))
        elif etype == "missing":
            errors.append(
                ConfigError(f"missing required key {where!r}", f"add `{loc[-1]}:`", file=str(doc.path), line=line)
            )
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            errors.append(ConfigError(f"{where}: {msg}{shown}", _remedy_for(etype), file=str(doc.path), line=line))
    return ConfigErrors(errors)


def _remedy_for(etype: str) -> str:
    if etype.startswith("int") or etype.startswith("float"):
        return "write a number"
    if etype.startswith("bool"):
        return "write true or false"
    if etype.startswith("list"):
        return "write a YAML list (- item per line or [a, b])"
    if etype.startswith("dict") or etype == "model_type":
        return "write a mapping (key: value per line)"
    if etype.startswith("string"):
        return "write a string (quote it if it contains ':' or starts with a digit)"
    if etype == "literal_error":
        return "use one of the values listed"
    return "see the playbook reference in README.md"
