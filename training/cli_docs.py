"""The command reference (docs/cli.md) generated from the ``engage`` commands themselves, so it cannot drift
from them: every command and sub-command with its usage, description, arguments and options (names, types,
defaults, help), the deprecated option names that still work, and the exit statuses. ``engage docs`` prints
it; a test fails when the committed docs/cli.md differs from what the commands generate."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import typer

from training.cli_common import DEPRECATED_OPTIONS, EXIT_STATUSES, FORMER_POSITIONALS

HEADER = """# engage command reference

Generated from the commands themselves by `engage docs > docs/cli.md` (a test checks that this file is what
the commands generate). `engage COMMAND --help` prints the same on a terminal.

Every command prints its result on stdout (JSON, except `validate` and `demo`, which print text); progress
bars with an ETA go to stderr, only when stderr is a terminal, and never with `--quiet`.
"""


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")


def _commands(group: Any, ctx: typer.Context, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        yield (*path, name), command
        if _is_group(command):
            yield from _commands(command, typer.Context(command, parent=ctx, info_name=name), (*path, name))


def _text(help_text: str | None) -> str:
    """A docstring as Markdown paragraphs (click's no-rewrap markers dropped, lines kept)."""
    lines = [line for line in inspect.cleandoc(help_text or "").splitlines() if line.strip() != "\b"]
    return "\n".join(lines).strip()


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None or default == () or callable(default):
        return ""
    if getattr(param, "is_flag", False):
        if param.secondary_opts:
            return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
        return "on" if default else "off"
    return f"`{default}`"


def _kind(param: Any, ctx: typer.Context) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    kind = param.display_type(ctx).strip("<>").upper()
    kind = {"STR": "TEXT", "INT": "INTEGER", "INT RANGE": "INTEGER"}.get(kind, kind)
    if getattr(param, "min", None) is not None:
        kind += f" ≥ {param.min}"
    return kind


def _parameters(command: Any, ctx: typer.Context) -> list[str]:
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            names = f"`{param.name.upper()}` (argument)"
        else:
            names = ", ".join(f"`{n}`" for n in (*param.opts, *param.secondary_opts))
        rows.append(f"| {names} | {_kind(param, ctx)} | {_default(param)} | {_cell(param.help or '')} |")
    if not rows:
        return []
    return ["| option | type | default | description |", "|---|---|---|---|", *rows, ""]


def _section(path: tuple[str, ...], command: Any, ctx: typer.Context) -> list[str]:
    name = " ".join(("engage", *path))
    out = [f"## {name}", ""]
    if _is_group(command):
        subs = [n for n in command.list_commands(ctx) if not command.get_command(ctx, n).hidden]
        out += [_text(command.help), "", "Sub-commands: " + ", ".join(f"`{name} {s}`" for s in subs) + ".", ""]
        return out
    pieces = " ".join(command.collect_usage_pieces(ctx))
    out += ["```", f"{name} {pieces}".rstrip(), "```", "", _text(command.help), ""]
    return out + _parameters(command, ctx)


def _deprecated() -> list[str]:
    out = ["## Deprecated names", "",
           "These still work (with a warning on stderr) so that existing scripts keep running; use the new ones.", "",
           "| old | new | where |", "|---|---|---|"]
    for old, new in DEPRECATED_OPTIONS.items():
        out.append(f"| `{old}` | `{new}` | every command that has `{new}` |")
    for command, option in FORMER_POSITIONALS.items():
        out.append(f"| `engage {command} DIR` | `engage {command} {option} DIR` | `{command}` |")
    return [*out, ""]


def command_reference(app: typer.Typer) -> str:
    """The Markdown command reference of ``app``."""
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="engage")
    lines = [HEADER, "## engage", "", _text(root.help), "", "```", "engage [--version] COMMAND [ARGS]...", "```", ""]
    lines += ["Commands: " + ", ".join(f"[`{' '.join(p)}`](#engage-{'-'.join(p)})"
                                       for p, c in _commands(root, ctx, ()) if not _is_group(c)) + ".",
              ""]
    for path, command in _commands(root, ctx, ()):
        lines += _section(path, command, typer.Context(command, parent=ctx, info_name=path[-1]))
    lines += _deprecated()
    lines += ["## Exit statuses", "", "| status | meaning |", "|---|---|"]
    lines += [f"| {code} | {text} |" for code, text in EXIT_STATUSES.items()]
    return "\n".join(lines).rstrip() + "\n"
