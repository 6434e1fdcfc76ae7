"""StaticFiles: the handler that serves a directory tree over GET and HEAD.

Owns mapping a request path to a file under one root (and refusing every path that would
leave it), the directory redirect, ``index.html``, the HTML directory listing, and sending a
file with ``Content-Type``, ``Content-Length`` and ``Last-Modified`` in bounded pieces with
write backpressure. It must never open anything outside the root: each path is decoded
segment by segment (``..``, encoded slashes and NUL are refused before any join), then the
joined path is resolved with ``os.path.realpath`` and checked to be inside the resolved root,
so symlinks that point outside are refused too. Names starting with a dot (``.git``, ``.env``)
are answered 404 and left out of listings unless ``dotfiles="allow"`` (``"deny"``: 403), so
serving a checkout never serves its repository or secrets; ``/.well-known/`` (RFC 8615) is
public. It does not parse HTTP or touch sockets; it speaks only the handler API (``w``, ``r``).

Tests: tests/integration/test_static.py (in-process and over ``reactor serve``).
"""

from __future__ import annotations

import html
import logging
import mimetypes
import os
import stat
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes

from .errors import BrokenConnectionError, ConnectionClosedError
from .request import Request
from .response import ResponseWriter

if TYPE_CHECKING:
    from .server import Handler

__all__ = ["StaticFiles", "mount"]

log = logging.getLogger("reactor.static")

#: Bytes read from a file and written per step; the handler then waits for the connection's
#: output to drain below its low-water mark, so a large file never sits in memory whole.

ALLOWED_METHODS = "GET, HEAD"

# The built-in table only (no /etc/mime.types): the same answer on every machine, with the
# types it lacks or that changed between Python versions set here (RFC 9239 makes JavaScript
# text/javascript; text/markdown is RFC 7763; the others are their IANA registrations).
_MIME = mimetypes.MimeTypes()
for _ext, _type in {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".toml": "application/toml",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".avif": "image/avif",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
}.items():
    _MIME.add_type(_type, _ext)

#: ``dotfiles`` choices: serve them, refuse them (403), or answer as if absent (404).
DOTFILES = ("allow", "deny", "ignore")
#: Dot-names that are public whatever ``dotfiles`` says (RFC 8615's well-known URIs).
_PUBLIC_DOTNAMES = frozenset({".well-known"})

# Types that are text without saying so in their major type.
_TEXT_LIKE = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/manifest+json",
        "application/toml",
        "application/xml",
        "image/svg+xml",
    }
)


class Forbidden(Exception):
    """The request path would leave the root, or names something that cannot be served."""


@dataclass(frozen=True, slots=True)
class Target:
    """A request path mapped into the root: the decoded ``segments`` (no ``.``, ``..`` or
    empty ones), the resolved filesystem ``path`` (inside the root) and whether the request
    path ended with a slash."""

    segments: tuple[str, ...]
    path: str
    trailing_slash: bool

    @property
    def url_path(self) -> str:
        """The canonical, percent-encoded URL path of the target (no trailing slash)."""
        return "/" + "/".join(quote(os.fsencode(s), safe="") for s in self.segments)


class StaticFiles:
    """``StaticFiles(root)`` is a handler ``(w, r)`` that serves the files under ``root``.

    GET and HEAD only (others: 405 with ``Allow``). A directory is served by its
    ``index.html`` if it has one, else by a listing (``listing=False``: 403); ``/dir`` is
    redirected to ``/dir/``. Paths that would leave the root get 403, missing ones 404.
    ``dotfiles``: what a path with a segment starting with "." gets: "ignore" (default: 404,
    and unlisted), "deny" (403, unlisted) or "allow" (served and listed). ``prefix``: the URL
    path it is mounted under (see ``mount``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        index: str = "index.html",
        listing: bool = True,
        dotfiles: str = "ignore",
        prefix: str = "",
    ) -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise NotADirectoryError(f"static root {os.fspath(root)!r} is not a directory")
        if dotfiles not in DOTFILES:
            raise ValueError(f"dotfiles must be one of {', '.join(DOTFILES)}, got {dotfiles!r}")
        self.root = real
        self.index = index
        self.listing = listing
        self.dotfiles = dotfiles
        #: The URL path it is mounted under (``/assets``; "" at the root): request paths are
        #: taken below it, and redirects and listings put it back.
        self.prefix = prefix.rstrip("/")

    def __repr__(self) -> str:
        return f"StaticFiles({self.root!r})"

    async def __call__(self, w: ResponseWriter, r: Request) -> None:
        try:
            await self.handle(w, r)
        except (BrokenConnectionError, ConnectionClosedError):
            # The client went away mid-response: nothing to answer, nothing to log as an error.
            log.debug("%s %s: client gone", r.method, r.path)

    async def handle(self, w: ResponseWriter, r: Request) -> None:
        if r.method not in ("GET", "HEAD"):
            w.headers.set("Allow", ALLOWED_METHODS)
            self.send_error(w, 405, "Method Not Allowed")
            return
        try:
            below = r.path[len(self.prefix) :]
            if not below:  # the mount point itself: its directory, with a slash
                w.headers.set("Location", self.prefix + "/")
                self.send_error(w, 301, "Moved Permanently")
                return
            target = self.resolve(below)
        except Forbidden as exc:
            log.info("refused %r: %s", r.path, exc)
            self.send_error(w, 403, "Forbidden")
            return
        if target is None:
            self.send_error(w, 404, "Not Found")
            return
        if self.dotfiles != "allow" and self.is_hidden(target):
            if self.dotfiles == "deny":
                self.send_error(w, 403, "Forbidden")
            else:
                self.send_error(w, 404, "Not Found")
            return
        try:
            fd = os.open(target.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, NotADirectoryError):
            self.send_error(w, 404, "Not Found")
            return
        except OSError as exc:
            log.info("cannot open %r: %s", target.path, exc)
            self.send_error(w, 403, "Forbidden")
            return
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                os.close(fd)
                fd = -1
                await self.serve_directory(w, r, target)
            elif stat.S_ISREG(st.st_mode):
                if target.trailing_slash:
                    self.send_error(w, 404, "Not Found")  # "/file.txt/" names no directory
                    return
                await self.serve_file(w, r, fd, st, target.path)
            else:  # FIFOs, devices, sockets
                self.send_error(w, 403, "Forbidden")
        finally:
            if fd >= 0:
                os.close(fd)

    # -- mapping a request path into the root ------------------------------------------------

    def resolve(self, raw_path: str) -> Target | None:
        """Map a raw (percent-encoded) request path to a Target inside the root.

        Raises Forbidden for a path that tries to leave the root (``..``, an encoded ``/``,
        NUL, a symlink out of the root) or is not an origin-form path; returns None when
        the path cannot name a file (not decodable by the filesystem encoding)."""
        if not raw_path.startswith("/"):
            raise Forbidden("not an absolute path")
        segments: list[str] = []
        for raw in raw_path.split("/"):
            try:
                decoded = os.fsdecode(unquote_to_bytes(raw))
            except UnicodeError:
                return None
            if "/" in decoded or (os.sep == "\\" and "\\" in decoded):
                raise Forbidden("encoded path separator")
            if "\0" in decoded:
                raise Forbidden("NUL in path")
            if decoded == "..":
                raise Forbidden("'..' segment")
            if decoded in ("", "."):
                continue
            segments.append(decoded)
        joined = os.path.join(self.root, *segments)
        real = os.path.realpath(joined)
        if not self.contains(real):
            raise Forbidden(f"resolves to {real!r}, outside the root")
        return Target(tuple(segments), real, raw_path.endswith("/"))

    def is_hidden(self, target: Target) -> bool:
        """Whether the request path, or the file it resolves to (a symlink may point at
        ``.env``), has a dot-name below the root."""
        if any(map(_hidden, target.segments)):
            return True
        below = os.path.relpath(target.path, self.root)
        return below != "." and any(map(_hidden, below.split(os.sep)))

    def contains(self, real_path: str) -> bool:
        """Whether a resolved path is the root or inside it."""
        root = self.root
        if real_path == root:
            return True
        prefix = root if root.endswith(os.sep) else root + os.sep
        return real_path.startswith(prefix)

    # -- files -------------------------------------------------------------------------------

    async def serve_file(
        self, w: ResponseWriter, r: Request, fd: int, st: os.stat_result, path: str
    ) -> None:
        """Send a regular file: validators (``ETag``, ``Last-Modified``) and conditional
        requests (304), a single ``Range`` (206, or 416 when unsatisfiable), then the bytes
        with ``ResponseWriter.sendfile``."""
        size = st.st_size
        etag = f'"{st.st_mtime_ns:x}-{size:x}"'
        last_modified = formatdate(st.st_mtime, usegmt=True)
        w.headers.set("ETag", etag)
        w.headers.set("Last-Modified", last_modified)
        if not_modified(r, etag, int(st.st_mtime)):
            w.write_header(304)
            return
        w.headers.set("Content-Type", self.content_type(path))
        w.headers.set("Accept-Ranges", "bytes")
        start, end = 0, size  # the half-open slice sent
        status = 200
        spec = r.headers.get("range")
        if spec is not None and if_range_holds(r, etag, last_modified):
            wanted = parse_range(spec, size)
            if wanted == "unsatisfiable":
                w.headers.set("Content-Range", f"bytes */{size}")
                self.send_error(w, 416, "Range Not Satisfiable")
                return
            if isinstance(wanted, tuple):
                start, end = wanted
                status = 206
                w.headers.set("Content-Range", f"bytes {start}-{end - 1}/{size}")
        w.headers.set("Content-Length", str(end - start))
        w.write_header(status)
        if r.method == "HEAD" or end == start:
            return
        # os.sendfile on plain sockets (the bytes never enter Python), pieces read as the
        # socket takes them on TLS. A file that shrank since fstat makes the response fall
        # short of its length: the server aborts the connection, which the client must see.
        await w.sendfile(fd, offset=start, count=end - start)

    def content_type(self, path: str) -> str:
        """``Content-Type`` for a file name: the built-in mimetypes table; text gets
        ``charset=utf-8``; unknown types are ``application/octet-stream``."""
        ctype, encoding = _MIME.guess_type(path, strict=False)
        if encoding is not None:
            # foo.tar.gz is gzip bytes, not a tar served with Content-Encoding.
            ctype = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}.get(
                encoding, "application/octet-stream"
            )
        if ctype is None:
            return "application/octet-stream"
        if ctype.startswith("text/") or ctype in _TEXT_LIKE:
            return f"{ctype}; charset=utf-8"
        return ctype

    # -- directories -------------------------------------------------------------------------

    async def serve_directory(self, w: ResponseWriter, r: Request, target: Target) -> None:
        if not target.trailing_slash:
            location = self.prefix + target.url_path.rstrip("/") + "/"
            if r.query:
                location += "?" + r.query
            w.headers.set("Location", location)
            self.send_error(w, 301, "Moved Permanently")
            return
        index = os.path.join(target.path, self.index)
        try:
            fd = os.open(index, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                st = os.fstat(fd)
                real = os.path.realpath(index)
                if stat.S_ISREG(st.st_mode) and self.contains(real):
                    await self.serve_file(w, r, fd, st, real)
                    return
            finally:
                os.close(fd)
        if not self.listing:
            self.send_error(w, 403, "Forbidden")
            return
        try:
            body = self.render_listing(target)
        except OSError as exc:
            log.info("cannot list %r: %s", target.path, exc)
            self.send_error(w, 403, "Forbidden")
            return
        w.headers.set("Content-Type", "text/html; charset=utf-8")
        w.headers.set("Content-Length", str(len(body)))
        w.write_header(200)
        if r.method != "HEAD":
            w.write(body)

    def render_listing(self, target: Target) -> bytes:
        """The HTML listing of a directory: names html-escaped, links percent-encoded,
        directories with a trailing slash, sizes in bytes."""
        entries: list[tuple[str, bool, int]] = []
        with os.scandir(target.path) as it:
            for entry in it:
                if self.dotfiles != "allow" and _hidden(entry.name):
                    continue
                try:
                    is_dir = entry.is_dir()
                    size = -1 if is_dir else entry.stat().st_size
                except OSError:  # a dangling symlink, or one we may not stat
                    is_dir, size = False, -1
                entries.append((entry.name, is_dir, size))
        entries.sort(key=lambda e: (not e[1], e[0]))
        title = html.escape(_display(self.prefix + target.url_path.rstrip("/") + "/"))
        lines = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>Index of {title}</title></head>",
            f"<body><h1>Index of {title}</h1>",
            "<table>",
            "<tr><th>Name</th><th>Size</th></tr>",
        ]
        if target.segments:
            lines.append('<tr><td><a href="../">../</a></td><td>-</td></tr>')
        for name, is_dir, size in entries:
            slash = "/" if is_dir else ""
            href = html.escape(quote(os.fsencode(name), safe="") + slash)
            text = html.escape(os.fsencode(name).decode("utf-8", "replace") + slash)
            shown = "-" if size < 0 else str(size)
            lines.append(f'<tr><td><a href="{href}">{text}</a></td><td>{shown}</td></tr>')
        lines.append("</table></body></html>")
        return ("\n".join(lines) + "\n").encode("utf-8")

    # -- errors ------------------------------------------------------------------------------

    def send_error(self, w: ResponseWriter, status: int, reason: str) -> None:
        body = f"{status} {reason}\n".encode()
        w.headers.set("Content-Type", "text/plain; charset=utf-8")
        w.headers.set("Content-Length", str(len(body)))
        w.write_header(status)
        w.write(body)


def mount(handler: Handler, mounts: list[StaticFiles]) -> Handler:
    """``handler`` with directories beside it (``reactor serve --static /assets=DIR``): a
    request whose path is a mount's prefix or below it goes to that StaticFiles (the
    longest prefix wins), any other to ``handler``."""
    ordered = sorted(mounts, key=lambda m: len(m.prefix), reverse=True)
    prefixes = [(m.prefix, m.prefix + "/", m) for m in ordered]

    def mounted(w: ResponseWriter, r: Request) -> Any:
        path = r.path
        for prefix, below, static in prefixes:
            if path.startswith(below) or path == prefix:
                return static(w, r)
        return handler(w, r)

    if getattr(handler, "reactor_streaming", False):
        mounted.reactor_streaming = True  # type: ignore[attr-defined]
    return mounted


def not_modified(r: Request, etag: str, mtime: int) -> bool:
    """RFC 9110 13.1.2/13.1.3: ``If-None-Match`` (weak comparison; it wins when present),
    else ``If-Modified-Since`` against the file's mtime in whole seconds."""
    inm = r.headers.get("if-none-match")
    if inm is not None:
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        return "*" in tags or etag in tags
    ims = r.headers.get("if-modified-since")
    # An HTTP-date is ASCII and at most 29 characters (IMF-fixdate; the obsolete forms are no
    # longer): anything else is not one, and RFC 9110 13.1.3 says to ignore it.
    if ims is None or len(ims) > _MAX_HTTP_DATE or not ims.isascii():
        return False
    try:
        since = parsedate_to_datetime(ims).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return mtime <= since


def if_range_holds(r: Request, etag: str, last_modified: str) -> bool:
    """``If-Range``: the range applies only if the validator is still current (a strong
    ETag match, or the exact Last-Modified date)."""
    value = r.headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    return value in (etag, last_modified)


def parse_range(spec: str, size: int) -> tuple[int, int] | str | None:
    """One byte range of ``Range: bytes=...`` as a half-open ``(start, end)``;
    ``"unsatisfiable"`` for a valid range outside the file; None to ignore the header (not
    bytes, malformed, or several ranges: the whole file is sent, as RFC 9110 14.2 allows)."""
    unit, sep, ranges = spec.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in ranges:
        return None
    first, dash, last = ranges.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if first == "":
        suffix = _range_number(last)
        if suffix is None:
            return None
        if suffix == 0:
            return "unsatisfiable"
        return (max(0, size - suffix), size)
    start = _range_number(first)
    if start is None:
        return None
    if not last:
        stop = size - 1
    else:
        given = _range_number(last)
        if given is None or given < start:
            return None
        stop = given
    if start >= size:
        return "unsatisfiable"
    return (start, min(size, stop + 1))


# A number with more significant digits than this is past any file (2**63 has 19).
_RANGE_DIGITS = 18
# Beyond every file size, and cheap to compare: what a longer number stands for.
_PAST_ANY_FILE: int = 10**_RANGE_DIGITS
_MAX_HTTP_DATE = 29


def _range_number(text: str) -> int | None:
    """A Range position (RFC 9110 14.1.1: 1*DIGIT): None unless ``text`` is ASCII digits only
    (``str.isdigit`` alone also takes superscripts and other scripts' digits). A number too
    long for any file counts as _PAST_ANY_FILE, so int() never sees thousands of digits."""
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0")
    if len(digits) > _RANGE_DIGITS:
        return _PAST_ANY_FILE
    return int(digits) if digits else 0


def _hidden(name: str) -> bool:
    """A dotfile or dot-directory name (``.git``, ``.env``), other than the public ones."""
    return name.startswith(".") and name not in _PUBLIC_DOTNAMES


def _display(url_path: str) -> str:
    """A percent-encoded path as a person reads it."""
    return os.fsencode(os.fsdecode(unquote_to_bytes(url_path))).decode("utf-8", "replace")
