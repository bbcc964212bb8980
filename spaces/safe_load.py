"""Reading a space document (YAML or JSON text) without letting the text decide how much is built.

A space file may come from anyone (a shell, a request to ``hpsearch serve``). YAML aliases let 1 KB of
text stand for a billion nodes (each level of ``&a [*b, *b, ...]`` multiplies the one below), and
whatever prints or stores such a value expands it; deep nesting exhausts the recursion of PyYAML's
composer and of the json module; an integer of thousands of digits makes ``int()`` refuse. Each of these
is refused here with one sentence naming the file and the limit (``hpsearch.spaces.limits``), before any
value is
constructed from the document.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import SpaceError
from .limits import QUOTED_CHARS, SPACE_DEPTH, SPACE_NODES, YAML_ALIASES, quoted


def parse_json(text: str, source: str) -> Any:
    """The JSON document in ``text``.

    Args:
        text: the file's text.
        source: the file's name, for messages.

    Returns:
        The parsed document (any JSON value).

    Raises:
        SpaceError: not valid JSON, nested too deeply, or a number Python refuses to read.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpaceError(f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                         source=source) from None
    except RecursionError:
        raise SpaceError(f"nests more than {SPACE_DEPTH.value()} levels deep; a space needs 4 "
                         f"(set {SPACE_DEPTH.variable} to raise the limit)", source=source) from None
    except ValueError as error:
        # Python refuses to convert an integer of more than 4300 digits (CVE-2020-10735).
        raise SpaceError(f"holds a value that cannot be read ({_short(error)})", source=source) from None
    bound = SPACE_DEPTH.value()
    if _depth(data, bound) > bound:
        raise SpaceError(f"nests more than {bound} levels deep; a space needs 4 "
                         f"(set {SPACE_DEPTH.variable} to raise the limit)", source=source)
    return data


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:QUOTED_CHARS]


def _depth(data: Any, bound: int) -> int:
    """How deep ``data`` nests, counted iteratively and only up to ``bound + 1``."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > bound:
            break
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return deepest


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``, read by a safe loader that bounds aliases, nesting and expansion.

    Args:
        text: the file's text.
        source: the file's name, for messages.

    Returns:
        The parsed document (None for an empty one).

    Raises:
        SpaceError: not valid YAML, a repeated key, more aliases than ``YAML_ALIASES``, a recursive alias,
            more nodes once expanded than ``SPACE_NODES``, deeper than ``SPACE_DEPTH``, or a value Python
            refuses to read.
    """
    import yaml

    loader = None
    try:
        loader = _loader_class()(text)  # its reader already refuses control characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        try:
            return loader.construct_document(node)
        except (AttributeError, TypeError, IndexError, KeyError, OverflowError) as error:
            # PyYAML's constructors assume well-formed values behind explicit tags: `!!timestamp x`
            # fails with an AttributeError. A space uses no tags; name the value's line instead.
            raise SpaceError(f"holds a value that cannot be read ({_short(error)})") from None
    except SpaceError as error:
        raise error.with_source(source) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        # PyYAML's problems are short and quote the character they stopped at; still one line, bounded.
        problem = " ".join(str(problem).split())[:QUOTED_CHARS]
        raise SpaceError(f"is not valid YAML: {problem}{where}", source=source) from None
    except RecursionError:
        raise SpaceError(f"nests more than {SPACE_DEPTH.value()} levels deep; a space needs 4",
                         source=source) from None
    except ValueError as error:
        # int() of thousands of digits (CVE-2020-10735), a timestamp out of range: values a space never has.
        raise SpaceError(f"holds a value that cannot be read ({_short(error)})", source=source) from None
    finally:
        if loader is not None:
            loader.dispose()


_RECURSIVE = "holds a YAML alias inside its own anchor (a recursive value); a space has none"


def _check_expansion(root: Any) -> None:
    """Refuse a node graph that is cyclic or that expands past ``SPACE_NODES`` nodes.

    The composer shares one node object for every alias of an anchor, so the graph is as small as the
    text; its expanded size (what a printer or ``json.dumps`` would build) is counted here once per
    distinct node, iteratively, without building anything.
    """
    bound = SPACE_NODES.value()
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(size[id(child)] for child in _children(node))
            if total > bound:
                raise SpaceError(
                    f"stands for more than {bound} values once its YAML aliases are expanded; "
                    f"write the values out, or set {SPACE_NODES.variable} to raise the limit"
                )
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise SpaceError(_RECURSIVE)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise SpaceError(_RECURSIVE)
            if id(child) not in size:
                stack.append((child, False))


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _loader_class() -> Any:
    import yaml

    class SpaceLoader(yaml.SafeLoader):
        """PyYAML's safe loader, refusing repeated keys, too many aliases and too deep a nesting."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.aliases = 0
            self.depth = 0
            self.alias_bound = YAML_ALIASES.value()
            self.depth_bound = SPACE_DEPTH.value()

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > self.alias_bound:
                    raise SpaceError(
                        f"uses more than {self.alias_bound} YAML aliases (*name); write the values out, or "
                        f"set {YAML_ALIASES.variable} to raise the limit"
                    )
            self.depth += 1
            try:
                # The composer recurses once per level: refuse depth before Python's recursion limit does.
                if self.depth > self.depth_bound:
                    raise SpaceError(f"nests more than {self.depth_bound} levels deep; a space needs 4 "
                                     f"(set {SPACE_DEPTH.variable} to raise the limit)")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        # A repeated key would silently replace an earlier parameter; refuse it instead.
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:
                continue  # an unhashable key: SafeConstructor refuses it below, naming the line
            if repeated:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {quoted(key)} (line {line})", key_node.start_mark
                )
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    SpaceLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return SpaceLoader
