"""YAML with positions: load a file into plain data and remember where each value was written.

PyYAML forgets line numbers once it builds Python objects, so we compose the node tree ourselves,
build the data from it, and keep the tree to answer "which line is services.redis.ports[1]?".
Duplicate keys (silently last-one-wins in PyYAML) are refused here.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdb_ops.errors import ConfigError
from cdb_ops.fsutil import read_text

Loc = tuple[str | int, ...]


class Lines:
    """1-based line of a mark, counting '\n' only: PyYAML also breaks lines at U+2028, U+2029 and
    U+0085, which no editor shows as a new line, so its own `mark.line` drifts after one of them."""

    def __init__(self, text: str):
        self._breaks = [m.start() for m in re.finditer("\n", text)]

    def __call__(self, mark: yaml.Mark | None) -> int | None:
        return None if mark is None else bisect.bisect_left(self._breaks, mark.index) + 1


@dataclass
class YamlDocument:
    path: Path
    data: Any
    root: yaml.Node | None
    lines: Lines = field(default_factory=lambda: Lines(""))

    def _line(self, node: yaml.Node) -> int:
        return self.lines(node.start_mark) or 1

    def line_of(self, loc: Loc) -> int | None:
        """1-based line of the deepest node along `loc` (a key path as pydantic reports it)."""
        node = self.root
        line = self._line(node) if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                nxt = None
                for key, value in node.value:
                    if key.value == str(part):
                        nxt = value
                        line = self._line(key)
                        break
                if nxt is None:
                    return line
                node = nxt
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return line
                node = node.value[part]
                line = self._line(node)
            else:
                return line
        return line


def _check_nodes(node: yaml.Node, path: Path, line_at: Lines, seen_nodes: set[int] | None = None) -> None:
    """Duplicate keys, and NUL characters in a value (written as "\\0"; the engine refuses them mid-run)."""
    # an alias is the same node again: visit each node once (a billion-laughs file stays linear)
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            k = str(key.value)
            line = line_at(key.start_mark) or 1
            if k in seen:
                raise ConfigError(
                    f"key {k!r} appears twice (first on line {seen[k]})",
                    "keep one of the two entries; YAML would silently use only the last",
                    file=str(path),
                    line=line,
                )
            seen[k] = line
            _check_nodes(key, path, line_at, seen_nodes)
            _check_nodes(value, path, line_at, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_nodes(item, path, line_at, seen_nodes)
    elif isinstance(node, yaml.ScalarNode) and "\0" in str(node.value):
        raise ConfigError(
            "a value holds a NUL character (\\0)",
            "remove the \\0 escape: no name, path, command or environment value may contain one",
            file=str(path),
            line=line_at(node.start_mark),
        )


def _runaway_quote(text: str, mark: yaml.Mark | None) -> yaml.ScalarToken | None:
    """The quoted scalar right before an error that spans several lines (a quote never closed on
    its line), or None. Block values never span lines in a playbook written by hand."""
    if mark is None:
        return None
    last: yaml.Token | None = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= mark.index:
                break
            last = token if isinstance(token, yaml.ScalarToken) else (last if _is_punct(token) else None)
    except yaml.YAMLError:
        pass
    if (
        isinstance(last, yaml.ScalarToken)
        and last.style in ('"', "'")
        and "\n" in text[last.start_mark.index : last.end_mark.index]
    ):
        return last
    return None


def _is_punct(token: yaml.Token) -> bool:
    # tokens between the runaway scalar and the error that do not change the story
    return isinstance(token, yaml.KeyToken | yaml.ValueToken | yaml.BlockEndToken)


def _compose(text: str) -> yaml.Node | None:
    """The node tree, by libyaml when PyYAML has it (a tenth of the time; the same nodes and marks);
    anything libyaml refuses is composed again by the pure-Python parser, whose error (and whose
    verdict) is the one reported, so both paths accept and refuse the same files the same way."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None and "\x85" not in text and "\u2028" not in text and "\u2029" not in text:
        try:
            return yaml.compose(text, Loader=fast)
        except (yaml.YAMLError, RecursionError):
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


# Characters YAML 1.1 (PyYAML) takes for line breaks but editors show inside a line: pasted from a
# document, one ends a comment early and turns the rest of it into content.
_UNICODE_BREAKS = {
    "\x85": "U+0085 NEXT LINE",
    "\u2028": "U+2028 LINE SEPARATOR",
    "\u2029": "U+2029 PARAGRAPH SEPARATOR",
}


def _unicode_breaks_in_comments(text: str, path: Path) -> str:
    """`text` with every U+0085/U+2028/U+2029 inside a comment replaced by a space (same length, so
    every mark keeps its position): a comment is for people, and people see no line break there. One
    outside a comment (in a key or value) is refused, naming the character and its line."""
    if not any(ch in text for ch in _UNICODE_BREAKS):
        return text
    out = list(text)
    quote = ""  # the quote a flow scalar is open with, across lines
    line = 1
    in_comment = False
    prev = "\n"
    for i, ch in enumerate(text):
        if ch == "\n":
            line, in_comment, prev = line + 1, False, ch
            continue
        if ch in _UNICODE_BREAKS:
            if not in_comment:
                raise ConfigError(
                    f"a {_UNICODE_BREAKS[ch]} character (an invisible line break pasted from a document) "
                    "in a key or value on this line",
                    "retype the line; YAML would break it in two there",
                    file=str(path),
                    line=line,
                )
            out[i] = " "
        elif in_comment:
            pass
        elif quote:
            if ch == quote and not (quote == '"' and prev == "\\"):
                quote = ""
        elif ch in "'\"" and prev in " \t\n[{,:-":
            quote = ch
        elif ch == "#" and prev in " \t\n":
            in_comment = True
        prev = ch
    return "".join(out)


def load_yaml(path: Path) -> YamlDocument:
    """Read `path`; a syntax error becomes a ConfigError with the file and line."""
    text = read_text(path, "playbook file", missing_fix="check the path, or run from the project directory")
    text = _unicode_breaks_in_comments(text, path)
    line_at = Lines(text)
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        line, started = line_at(mark), line_at(exc.context_mark)
        context = ""
        if exc.context:
            context = f" ({exc.context}"
            if started and line and started != line:
                context += f" started on line {started}"
            context += ")"
        if started and "end of stream" in problem:
            # an unclosed quote or bracket: the line to fix is where it opened, not the end of the file
            line, context = started, f" ({exc.context}, never closed)"
        elif started and line and started != line and "flow" in (exc.context or ""):
            # `[a, b` without its `]`: the bracket opened on `started`; the parser noticed later
            line, context = started, f" ({exc.context} on this line, not closed before line {line})"
        quoted = _runaway_quote(text, mark)
        if quoted is not None:
            # a quote left open swallows the lines up to the next quote character: name its line
            opened, closed = line_at(quoted.start_mark), line_at(quoted.end_mark)
            line, context = opened, f" (the quote opened on this line only closes on line {closed})"
        raise ConfigError(
            f"YAML syntax error: {problem}{context}",
            "check indentation (spaces, not tabs), colons after keys and closing quotes/brackets",
            file=str(path),
            line=line,
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
        return YamlDocument(path, None, None, line_at)
    try:
        _check_nodes(root, path, line_at)
    except RecursionError:  # (libyaml composes deeper trees than the pure parser: refused here then)
        raise ConfigError("nested too deeply to be a playbook", "flatten the structure", file=str(path)) from None
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
            line=line_at(mark),
        ) from None
    finally:
        loader.dispose()
    return YamlDocument(path, data, root, line_at)
