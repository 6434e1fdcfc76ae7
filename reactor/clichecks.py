"""``reactor serve``'s checks at start-up: one line naming the thing and what to do.

Owns the checks made before anything listens, each one line: a path flag whose value looks
like an application (``--access-log flaskapp:app`` took the APP after it) is a usage error
(exit status 2); an access log that cannot be opened and certificate and key files that are
missing, unreadable, of the wrong kind, encrypted or not matching (each named) are errors of
the environment (``environment_error``, exit status 1), as a port in use is. Used by
reactor/cli.py. Tests: tests/integration/test_serve_footguns.py.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any, NoReturn

from .apploader import one_line

__all__ = ["check_access_log", "check_path_flags", "environment_error", "load_tls"]


def environment_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """Exit with status 1 and one line: the command was right, the machine is not (a file
    that cannot be written or read, a certificate that does not match its key). Usage errors
    (parser.error) exit with 2."""
    text = " ".join(message.split())
    parser.exit(1, f"{parser.prog}: error: {text}\n")


_APP_LIKE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(.*\))?")


def check_path_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A flag that takes a path but got ``module:attr`` took the APP that followed it."""
    for flag, dest in _PATH_FLAGS:
        value = getattr(args, dest, None)
        if not isinstance(value, str) or not _APP_LIKE.fullmatch(value):
            continue
        if os.path.exists(value):
            continue
        hint = " (or --access-log=- for stdout)" if flag == "--access-log" else ""
        parser.error(
            f"{flag} {value!r} looks like an application (module:callable), not a file: "
            f"give APP before {flag}{hint}"
        )


#: Flags whose value is a path, checked by check_path_flags.
_PATH_FLAGS = [
    ("--access-log", "access_log"),
    ("--root", "root"),
    ("--certfile", "certfile"),
    ("--keyfile", "keyfile"),
    ("--pid", "pid"),
    ("--config", "config"),
    ("--log-config", "log_config"),
]


def check_access_log(parser: argparse.ArgumentParser, path: str | None) -> None:
    """The access log file can be opened for appending (now, not at the first request)."""
    if path is None or path == "-":
        return
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        environment_error(
            parser,
            f"--access-log {path!r}: cannot open it for appending: {exc.strerror or exc} "
            "(give a writable file, or - for stdout)",
        )


def load_tls(parser: argparse.ArgumentParser, certfile: str, keyfile: str | None) -> Any:
    """The SSLContext for --certfile/--keyfile, or a usage error naming the file at fault."""
    import ssl

    from .tls import make_context

    for flag, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                text = file.read(1 << 20)
        except OSError as exc:
            environment_error(parser, f"{flag} {path!r}: cannot read it: {exc.strerror or exc}")
        if flag == "--certfile" and b"-----BEGIN CERTIFICATE-----" not in text:
            environment_error(
                parser, f"--certfile {path!r} holds no PEM certificate (BEGIN CERTIFICATE)"
            )
        has_key = b"PRIVATE KEY-----" in text
        if flag == "--keyfile" and not has_key:
            environment_error(
                parser, f"--keyfile {path!r} holds no PEM private key (BEGIN PRIVATE KEY)"
            )
        if flag == "--certfile" and keyfile is None and not has_key:
            environment_error(
                parser,
                f"--certfile {path!r} holds no private key: give its key with --keyfile FILE",
            )

    def no_password() -> str:
        raise ValueError("encrypted")

    try:
        return make_context(certfile, keyfile, no_password)  # type: ignore[arg-type]
    except ValueError:
        environment_error(
            parser,
            f"the private key in {keyfile or certfile!r} is encrypted: give an unencrypted "
            "key (openssl pkey -in KEY -out KEY.plain)",
        )
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or exc.reason == "KEY_VALUES_MISMATCH":
            environment_error(
                parser,
                f"the private key in {keyfile or certfile!r} does not match the certificate "
                f"in {certfile!r}",
            )
        environment_error(parser, f"cannot load --certfile {certfile!r}: {one_line(exc)}")
    except OSError as exc:
        environment_error(parser, f"cannot load --certfile/--keyfile: {one_line(exc)}")
