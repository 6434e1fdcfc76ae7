"""Where ``reactor serve``'s flags come from besides the command line: REACTOR_* variables,
``--config reactor.toml``, and ``--print-config``.

Owns ``args_from_env`` (REACTOR_ and the flag's name: REACTOR_MAX_BODY_SIZE) and reading a
TOML file (``tomllib``) into the same flags a command line has, so that a file can say
nothing a flag cannot and is checked by the same parser: every flag has a key, its long name
with ``_`` or ``-`` (``max_requests = 1000``, ``bind = ["127.0.0.1:8000",
"unix:/run/r.sock"]``, ``access_log = true`` for stdout), and ``app`` is APP. The CLI applies
the file under the environment and the command line (flags > REACTOR_* > file > defaults).
Also ``render``, the effective configuration as TOML with where each value came from. It does
not parse values itself (argparse does, with the flag's own parser).
Tests: tests/integration/test_config_file.py, test_cli.py (the environment variables).
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "ConfigFileError",
    "apply_config_file",
    "args_from_env",
    "args_from_file",
    "env_name",
    "flag_sources",
    "key_of",
    "render",
]


class ConfigFileError(ValueError):
    """The file cannot be read or says something no flag means; the message says what."""


def key_of(action: argparse.Action) -> str:
    """``--max-body-size`` -> ``max_body_size``; the positional APP -> ``app``."""
    if not action.option_strings:
        return str(action.dest)
    return max(action.option_strings, key=len).lstrip("-").replace("-", "_")


def args_from_file(
    path: str,
    actions: Iterable[argparse.Action],
    given: set[str],
    repeatable: set[str],
) -> list[str]:
    """Command-line arguments for the file's keys whose flag is not in ``given`` (flags
    already set by the command line or the environment). Raises ConfigFileError."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigFileError(f"--config {path!r}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"--config {path!r}: not TOML: {exc}") from None
    by_key = {key_of(action): action for action in actions if action.dest != "help"}
    flags: list[str] = []
    positional: list[str] = []
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        action = by_key.get(key)
        if action is None or key in ("config", "print_config"):
            raise ConfigFileError(
                f"--config {path!r}: unknown key {raw_key!r} (the keys are the flags of "
                "'reactor serve --help', with _ for -)"
            )
        if not action.option_strings:  # APP
            if not isinstance(value, str):
                raise ConfigFileError(f"--config {path!r}: app must be a string")
            if "app" not in given:
                positional.append(value)
            continue
        flag = max(action.option_strings, key=len)
        if given.intersection(action.option_strings):
            continue
        flags.extend(_flag_values(path, raw_key, flag, action, value, key in repeatable))
    return flags + positional


def _flag_values(
    path: str, key: str, flag: str, action: argparse.Action, value: Any, repeatable: bool
) -> list[str]:
    if isinstance(value, bool):
        if action.nargs == 0:  # a switch
            return [flag] if value else []
        if action.nargs == "?" and action.const is not None:  # --access-log: true = stdout
            return [f"{flag}={action.const}"] if value else []
        raise ConfigFileError(f"--config {path!r}: {key} takes a value, not {value}")
    if isinstance(value, list):
        if not repeatable:
            raise ConfigFileError(f"--config {path!r}: {key} takes one value, not a list")
        return [f"{flag}={_text(path, key, item)}" for item in value]
    if action.nargs == 0:
        raise ConfigFileError(f"--config {path!r}: {key} is a switch: true or false")
    return [f"{flag}={_text(path, key, value)}"]


def _text(path: str, key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigFileError(f"--config {path!r}: {key} = {value!r} is not a string or a number")


def render(
    args: argparse.Namespace, actions: Sequence[argparse.Action], sources: dict[str, str]
) -> str:
    """The effective configuration as TOML, one key per flag, each with where its value came
    from (flag, environment, file, default); unset flags are comments."""
    lines = ["# reactor serve: the effective configuration (flags > environment > file > default)"]
    for action in actions:
        if action.dest in ("help", "config", "print_config"):
            continue
        key = key_of(action)
        value = getattr(args, action.dest, None)
        source = sources.get(key, "default")
        if value is None or (value is False and action.nargs == 0 and source == "default"):
            lines.append(f"# {key} =  (not set)")
            continue
        if key == "uds_mode" and isinstance(value, int):
            value = f"0o{value:o}"  # read back by the flag's own octal parser
        lines.append(f"{key} = {_toml(value)}  # {source}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def flag_sources(
    flags: Iterable[argparse.Action], argv: list[str], from_env: list[str]
) -> dict[str, str]:
    """Where each flag set so far came from: ``flag`` (the command line) or ``environment``
    (``from_env``, the flags made of REACTOR_* variables), by key."""
    sources: dict[str, str] = {}
    flags = list(flags)
    for origin, items in (("environment", from_env), ("flag", argv)):
        named = {item.partition("=")[0] for item in items if item.startswith("-")}
        for action in flags:
            if named.intersection(action.option_strings):
                sources[key_of(action)] = origin
    return sources


def apply_config_file(
    parser: Any, args: argparse.Namespace, sources: dict[str, str], repeatable: set[str]
) -> None:
    """--config FILE: its values for what neither the command line nor the environment set
    (flags > environment > file > defaults), parsed by the flags' own parsers (``parser``:
    reactor serve's, with ``actions()`` and ``flags()``). Marks them ``file`` in
    ``sources``; raises ConfigFileError; a bad value is the parser's usage error."""
    if not args.config:
        return
    given = {
        option
        for action in parser.flags()
        if key_of(action) in sources
        for option in action.option_strings
    }
    if args.app is not None:
        given.add("app")
    from_file = args_from_file(args.config, parser.actions(), given, repeatable)
    if not from_file:
        return
    defaults = parser.parse_args([])
    file_args = parser.parse_args(from_file)
    for action in parser.actions():
        dest = action.dest
        if dest == "help" or not hasattr(file_args, dest):
            continue
        value = getattr(file_args, dest)
        if value != getattr(defaults, dest) and getattr(args, dest) == getattr(defaults, dest):
            setattr(args, dest, value)
            sources[key_of(action)] = "file"


# -- environment variables ----------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def env_name(action: argparse.Action) -> str:
    """``--max-body-size`` -> ``REACTOR_MAX_BODY_SIZE``."""
    longest = max(action.option_strings, key=len)
    return "REACTOR_" + longest.lstrip("-").upper().replace("-", "_")


def args_from_env(
    parser: Any,
    argv: Sequence[str],
    environ: dict[str, str],
    repeatable: Callable[[argparse.Action], bool],
) -> list[str]:
    """Flags for the REACTOR_* variables set in ``environ`` whose flag is not in ``argv``
    (the command line wins); ``parser`` is reactor serve's (``flags()``, ``error()``). A
    switch takes 1/true/yes/on or 0/false/no/off; --access-log takes those too (yes:
    stdout, no: off) or a file name; a repeatable flag (--bind) takes values separated by
    spaces or commas."""
    given = set()
    for arg in argv:
        if arg.startswith("-"):
            given.add(arg.partition("=")[0])
    extra: list[str] = []
    for action in parser.flags():
        if action.dest == "help":
            continue
        name = env_name(action)
        value = environ.get(name)
        if value is None or given.intersection(action.option_strings):
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # store_true
            lowered = value.strip().lower()
            if lowered in _TRUE:
                extra.append(flag)
            elif lowered not in _FALSE:
                parser.error(f"{name}={value!r}: expected 1/true/yes/on or 0/false/no/off")
        elif action.nargs == "?" and action.const is not None:  # --access-log [FILE]
            lowered = value.strip().lower()
            if lowered in _TRUE:
                # The value is spelled out: a bare flag inserted before APP would take APP.
                extra.append(f"{flag}={action.const}")
            elif lowered not in _FALSE:
                extra.append(f"{flag}={value}")
        elif repeatable(action):
            for item in value.replace(",", " ").split():
                extra.append(f"{flag}={item}")
        else:
            extra.append(f"{flag}={value}")
    return extra
