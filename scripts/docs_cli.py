"""The CLI reference, generated from ``hpsearch``'s own argument parser.

The docs site's ``reference/cli.md`` holds the line ``<!-- cli-reference -->``; at build time
``scripts/docs_hooks.py`` replaces it with :func:`cli_reference` of :func:`hpsearch.cli.build_parser`, so
every command and option is documented once, by the code that parses it. :func:`undocumented` lists the
arguments without help text; the hook turns each into a warning, which fails the strict build.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

#: Characters Markdown would read as markup inside a table cell.
_MARKUP = re.compile(r"([\\`*_\[\]<>|])")


def commands(parser: argparse.ArgumentParser, name: str = ""
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command of a parser, depth first: the parser itself, then each sub-command's parser.

    Args:
        parser: the top-level parser (``hpsearch``).
        name: the command line that reaches ``parser`` (default: its ``prog``).

    Returns:
        An iterator of ``(command line, parser)`` pairs such as ``("hpsearch db upgrade", parser)``.
    """
    name = name or parser.prog
    yield name, parser
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, sub in action.choices.items():
                if id(sub) not in seen:  # an alias maps a second word to the same parser
                    seen.add(id(sub))
                    yield from commands(sub, f"{name} {word}")


def _own_arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's positionals and options, without ``-h`` and the sub-command slot."""
    return [action for action in parser._actions
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))]


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """The arguments of every command that have no help text, as ``"hpsearch run --engine"``.

    Args:
        parser: the top-level parser.

    Returns:
        One entry per argument whose ``help`` is empty or missing (``argparse.SUPPRESS``ed ones are
        hidden on purpose and not listed).
    """
    missing = []
    for name, command in commands(parser):
        for action in _own_arguments(command):
            if action.help == argparse.SUPPRESS:
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {_label(action)}")
    return missing


def _label(action: argparse.Action) -> str:
    if action.option_strings:
        return ", ".join(action.option_strings)
    return action.metavar if isinstance(action.metavar, str) else action.dest


def _cell(text: object) -> str:
    return _MARKUP.sub(r"\\\1", " ".join(str(text).split()))


def _value(action: argparse.Action) -> str:
    """What follows the option on the command line (``SECONDS``, ``{auto,binary}``), or nothing for a flag."""
    if action.nargs == 0:
        return ""
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _default(action: argparse.Action) -> str:
    # None, False and [] are "not given": the help text says what the program does then.
    if action.nargs == 0 or action.default in (None, [], argparse.SUPPRESS):
        return ""
    return f"`{action.default}`"


def _anchor(name: str) -> str:
    return name.replace(" ", "-")


def cli_reference(parser: argparse.ArgumentParser) -> str:
    """The Markdown of the CLI reference: per command its usage, description and a table of arguments.

    Args:
        parser: the top-level parser.

    Returns:
        Markdown with one ``##`` section per command (anchors like ``#hpsearch-run``), an argument table
        of option, value, default and help (choices listed), and a list of the commands first.
    """
    found = list(commands(parser))
    lines = ["| Command | What it does |", "| --- | --- |"]
    helps = _command_helps(parser)
    for name, _ in found[1:]:
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {_cell(helps.get(name, ''))} |")
    lines.append("")
    for name, command in found:
        lines += [f"## {name} {{ #{_anchor(name)} }}", ""]
        description = command.description or helps.get(name, "")
        if description:
            lines += [_escape_prose(description), ""]
        lines += ["```text", _usage(command), "```", ""]
        arguments = _own_arguments(command)
        if not arguments:
            continue
        lines += ["| Argument | Value | Default | Description |", "| --- | --- | --- | --- |"]
        for action in arguments:
            if action.help == argparse.SUPPRESS:
                continue
            text = action.help or ""
            if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
                text += f" (one of: {', '.join(map(str, action.choices))})"
            if action.required and action.option_strings:
                text += " (required)"
            value = _value(action)
            value = f"`{value}`" if value else ""
            lines.append(f"| `{_label(action)}` | {value} | {_default(action)} | {_cell(text)} |")
        lines.append("")
    return "\n".join(lines)


def _usage(parser: argparse.ArgumentParser) -> str:
    # A fixed width, so that the page does not depend on the terminal that built it.
    formatter = parser.formatter_class(prog=parser.prog, width=100)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def _escape_prose(text: str) -> str:
    return _MARKUP.sub(r"\\\1", " ".join(text.split()))


def _command_helps(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, str]:
    """The one-line ``help=`` each sub-command was registered with, by command line."""
    name = prefix or parser.prog
    helps: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            registered = {choice.dest: choice.help for choice in action._choices_actions}
            for word, sub in action.choices.items():
                helps[f"{name} {word}"] = registered.get(word) or ""
                helps.update(_command_helps(sub, f"{name} {word}"))
    return helps
