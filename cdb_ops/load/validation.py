"""Turn pydantic validation errors into ConfigErrors that name the file, the line and the fix."""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Iterable
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ValidationError

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


# pydantic puts a union member's or validator's name into an error's location ('float', 'bool',
# 'list[str]', 'function-after[...]'): not a key of the playbook
_TYPE_TAG_RE = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-\w+\[.*\]|[\w-]+\[.*\])$")


def config_errors_from(exc: ValidationError, doc: YamlDocument, model: type[BaseModel]) -> ConfigErrors:
    """One ConfigError per problem the user has to fix: a value a union refuses in every member is one
    problem (not one per member), and a key written without a value is said to be just that."""
    grouped: dict[tuple[Any, ...], list[Any]] = {}
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _TYPE_TAG_RE.match(p)))
        grouped.setdefault(loc, []).append(err)
    errors: list[ConfigError] = []
    for loc, errs in grouped.items():
        line = doc.line_of(loc)
        where = _dotted(loc)
        err = errs[0]
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
        elif etype == "cdb_fix":  # a validator that knows the fix (load/hardening.py)
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            fix = str((err.get("ctx") or {}).get("fix", ""))
            errors.append(ConfigError(f"{where}: {err['msg']}{shown}", fix, file=str(doc.path), line=line))
        elif "input" in err and err["input"] is None:
            # `KEY:` with nothing after it is null in YAML: whatever the key takes, it has no value yet
            expected = _one_of(_expected(e["type"]) for e in errs)
            errors.append(
                ConfigError(
                    f"{where} has no value",
                    f"write {expected} after `{loc[-1]}:` on this line, or remove the line",
                    file=str(doc.path),
                    line=line,
                )
            )
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            if len(errs) == 1:
                msg = err["msg"].removeprefix("Value error, ")
                errors.append(ConfigError(f"{where}: {msg}{shown}", _remedy_for(etype), file=str(doc.path), line=line))
            else:
                expected = " or ".join(dict.fromkeys(_expected(e["type"]) for e in errs))
                errors.append(
                    ConfigError(
                        f"{where}: expected {expected}{shown}", f"write {expected}", file=str(doc.path), line=line
                    )
                )
    return ConfigErrors(errors)


def _one_of(options: Iterable[str]) -> str:
    """'a string, a number or true or false' -> 'a string, a number or true/false'."""
    unique = list(dict.fromkeys(options))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " or " + unique[-1]


def _expected(etype: str) -> str:
    """What a pydantic error type wants, in a playbook author's words."""
    if etype.startswith("int") or etype.startswith("float"):
        return "a number"
    if etype.startswith("bool"):
        return "true/false"
    if etype.startswith("list"):
        return "a list"
    if etype.startswith("dict") or etype == "model_type":
        return "a mapping"
    if etype.startswith("string"):
        return "a string"
    return "a value"


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
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "write a number within the bound named"
    return "see the playbook reference in docs/configuration.md"


# ---------------------------------------------------------------------------------------------
# The domain of each playbook value: what the engine would refuse (or misread) mid-run is refused at
# load time instead, where the error can name the line. The playbook's models (specs.py) use these types.

# The Docker reference grammar (distribution/reference, as `docker pull` parses a name): lower-case
# path components, an optional registry host[:port], a tag, an optional digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*"
_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:(?:{_DOMAIN}|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)
# Docker's health check durations are int64 nanoseconds, and a set value must be at least 1 ms
DOCKER_MIN_DURATION = 0.001
DOCKER_MAX_DURATION = (2**63 - 1) / 1e9


def image_reference(value: str) -> str:
    if not value or value != value.strip():
        raise ValueError("an image name must not be empty or start/end with a space")
    m = _REFERENCE_RE.match(value)
    if m is None or len(m.group("name")) > 255:
        hint = " (image names are lower-case)" if value.lower() != value and _REFERENCE_RE.match(value.lower()) else ""
        raise ValueError(f"not a valid image reference{hint}; write e.g. postgres:15-alpine or ghcr.io/org/app:1.2")
    return value


def bind_address(value: str) -> str:
    """An IP address of this host: `0.0.0.0` must be written out — an empty one would publish everywhere."""
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise ValueError(
            "not an IP address; write e.g. 127.0.0.1 (this host only) or 0.0.0.0 (every interface)"
        ) from None


def env_name(value: str) -> str:
    if not value or "=" in value or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("an environment variable name must not be empty or contain '=', spaces or control characters")
    return value


def project_path(value: str) -> str:
    """A path inside the project, written relative to it (`./replays`, `images/screener/Dockerfile`).

    Checked as written (symlinks inside the project are the user's to place): `../../etc` or `/etc`
    would be hashed on every plan and mounted into a container."""
    if not value.strip():
        raise ValueError("an empty path")
    if os.path.isabs(value):
        raise ValueError("write the path relative to the project directory (absolute paths leave the project)")
    normal = os.path.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise ValueError("the path leaves the project directory; keep what a container uses inside the project")
    return value


def docker_duration(seconds: float) -> float:
    """0 (Docker's default) or between 1 ms and Docker's int64-nanosecond limit."""
    if not math.isfinite(seconds) or seconds > DOCKER_MAX_DURATION:
        raise ValueError("too long for Docker (at most about 292 years); write e.g. 5s or 2m")
    if 0 < seconds < DOCKER_MIN_DURATION:
        raise ValueError("Docker needs at least 1ms (or 0 for its default)")
    return seconds


ImageRef = Annotated[str, AfterValidator(image_reference)]
BindAddress = Annotated[str, AfterValidator(bind_address)]
EnvName = Annotated[str, AfterValidator(env_name)]
ProjectPath = Annotated[str, AfterValidator(project_path)]
