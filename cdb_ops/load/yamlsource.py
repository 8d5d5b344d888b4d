"""YAML with positions: load a file into plain data and remember where each value was written.

PyYAML forgets line numbers once it builds Python objects, so we compose the node tree ourselves,
build the data from it, and keep the tree to answer "which line is services.redis.ports[1]?".
Duplicate keys (silently last-one-wins in PyYAML) are refused here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cdb_ops.errors import ConfigError

Loc = tuple[str | int, ...]


@dataclass
class YamlDocument:
    path: Path
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Loc) -> int | None:
        """1-based line of the deepest node along `loc` (a key path as pydantic reports it)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                nxt = None
                for key, value in node.value:
                    if key.value == str(part):
                        nxt = value
                        line = key.start_mark.line + 1
                        break
                if nxt is None:
                    return line
                node = nxt
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def _check_duplicates(node: yaml.Node, path: Path, seen_nodes: set[int] | None = None) -> None:
    # an alias is the same node again: visit each node once (a billion-laughs file stays linear)
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            k = str(key.value)
            if k in seen:
                raise ConfigError(
                    f"key {k!r} appears twice (first on line {seen[k]})",
                    "keep one of the two entries; YAML would silently use only the last",
                    file=str(path),
                    line=key.start_mark.line + 1,
                )
            seen[k] = key.start_mark.line + 1
            _check_duplicates(value, path, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, path, seen_nodes)


def load_yaml(path: Path) -> YamlDocument:
    """Read `path`; a syntax error becomes a ConfigError with the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found", "check the path, or run from the project directory", file=str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", "save the file as UTF-8", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError(
            "is a folder, not a file", "remove the folder and restore the file from git", file=str(path)
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        context = ""
        if exc.context:
            context = f" ({exc.context}"
            if exc.context_mark and mark and exc.context_mark.line != mark.line:
                context += f" started on line {exc.context_mark.line + 1}"
            context += ")"
        raise ConfigError(
            f"YAML syntax error: {problem}{context}",
            "check indentation (spaces, not tabs), colons after keys and closing quotes/brackets",
            file=str(path),
            line=(mark.line + 1) if mark else None,
        ) from None
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError carries no mark)
        pos = getattr(exc, "position", None)
        line = text.count("\n", 0, pos) + 1 if isinstance(pos, int) else None
        raise ConfigError(
            f"YAML error: {exc}".splitlines()[0],
            "remove the unprintable character (a NUL, escape or other control character) from that line",
            file=str(path),
            line=line,
        ) from None
    except RecursionError:
        raise ConfigError("nested too deeply to be a playbook", "flatten the structure", file=str(path)) from None
    if root is None:
        return YamlDocument(path, None, None)
    _check_duplicates(root, path)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(root)
    except RecursionError:
        raise ConfigError("nested too deeply to be a playbook", "flatten the structure", file=str(path)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            f"YAML error: {exc.problem}",
            "check the value's syntax",
            file=str(path),
            line=(mark.line + 1) if mark else None,
        ) from None
    finally:
        loader.dispose()
    return YamlDocument(path, data, root)
