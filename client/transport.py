"""HTTP under the client: one session, the error shape raised as exceptions, retries on 429/503.

Uploads stream from disk (a multipart body read in blocks with a known length), downloads
stream to disk: memory stays flat whatever the file size.
"""
from __future__ import annotations

import email.utils
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import requests

from .errors import PlatformError, RateLimited, Unavailable, error_from_response

RETRY_STATUSES = (429, 503)
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class MultipartStream:
    """A ``multipart/form-data`` body read from disk in blocks, with its length known up front.

    ``requests`` sends an object with ``read`` and ``__len__`` as a streamed body with a
    Content-Length, so the server sees an ordinary upload and the client never holds the file.
    """

    def __init__(self, fields: dict[str, str], file_field: str, path: Path, filename: str | None = None,
                 content_type: str = "application/octet-stream", progress: Progress | None = None,
                 block: int = 1 << 20) -> None:
        self.boundary = uuid.uuid4().hex
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.progress, self.block = progress, block
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(k)}"\r\n\r\n'.encode()
            + str(v).encode() + b"\r\n" for k, v in fields.items())
        name = _quote(filename or self.path.name)
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(file_field)}"; '
                 f'filename="{name}"\r\nContent-Type: {content_type}\r\n\r\n').encode()
        self._parts: list[bytes | IO[bytes]] = [head, b"", f"\r\n--{self.boundary}--\r\n".encode()]
        self._length = len(head) + self.size + len(self._parts[2])
        self._fh: IO[bytes] | None = None
        self._stage, self._sent_file = 0, 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        size = self.block if size is None or size < 0 else size
        while self._stage < 3:
            if self._stage == 1:
                if self._fh is None:
                    self._fh = open(self.path, "rb")  # noqa: SIM115 - closed at the end of the stage
                chunk = self._fh.read(size)
                if chunk:
                    self._sent_file += len(chunk)
                    if self.progress:
                        self.progress(self._sent_file, self.size)
                    return chunk
                self._fh.close()
                self._stage = 2
                continue
            part = self._parts[self._stage]
            assert isinstance(part, bytes)
            if part:
                chunk, self._parts[self._stage] = part[:size], part[size:]
                return chunk
            self._stage += 1
        return b""

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _quote(value: str) -> str:
    """Quote a name for a Content-Disposition parameter (no quotes, no line breaks)."""
    return "".join(ch for ch in value if ch >= " " and ch not in '"\\\x7f')


class Transport:
    """One HTTP session to the platform, raising the typed errors."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60.0, retries: int = 4,
                 backoff: float = 0.5, max_backoff: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 user_agent: str = "vru-client") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.sleep = sleep
        self.http = requests.Session()
        self.http.headers["User-Agent"] = user_agent
        self.retried = 0  # how many retries this transport made: scripts and tests read it

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                data: Any = None, headers: dict[str, str] | None = None, stream: bool = False,
                body_factory: Callable[[], Any] | None = None) -> requests.Response:
        """Send, retrying 429 and 503 with exponential backoff or the server's ``Retry-After``.

        A streamed body can be sent again only if ``body_factory`` makes a fresh one.
        """
        attempt = 0
        while True:
            body = body_factory() if body_factory is not None else data
            can_resend = data is None or body_factory is not None
            try:
                response = self.http.request(method, self.url(path), json=json, params=_clean(params), data=body,
                                             headers=self._headers(headers), timeout=self.timeout, stream=stream)
            except requests.ConnectionError as exc:
                if attempt >= self.retries or not can_resend:
                    raise Unavailable(0, "unreachable", f"cannot reach the platform at {self.base_url}: {exc}") \
                        from None
                self._wait(attempt, None)
                attempt += 1
                continue
            finally:
                if isinstance(body, MultipartStream):
                    body.close()
            if response.status_code < 400:
                return response
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if response.status_code in RETRY_STATUSES and attempt < self.retries and can_resend:
                response.close()
                self._wait(attempt, retry_after)
                attempt += 1
                continue
            raise self._error(response, retry_after)

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = retry_after if retry_after is not None else min(self.max_backoff, self.backoff * (2 ** attempt))
        self.retried += 1
        self.sleep(min(delay, self.max_backoff))

    @staticmethod
    def _error(response: requests.Response, retry_after: float | None) -> PlatformError:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = error_from_response(response.status_code, body, response.text if body is None else "")
        if isinstance(error, RateLimited):
            error.retry_after = retry_after
        return error

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def upload(self, path: str, file_path: Path, fields: dict[str, Any], *, file_field: str = "file",
               filename: str | None = None, content_type: str = "application/octet-stream",
               progress: Progress | None = None) -> Any:
        """POST one file as multipart/form-data, streamed from disk."""
        plain = {k: str(v) for k, v in fields.items() if v is not None}

        def body() -> MultipartStream:
            return MultipartStream(plain, file_field, Path(file_path), filename, content_type, progress)

        first = body()
        response = self.request("POST", path, headers={"Content-Type": first.content_type,
                                                       "Content-Length": str(len(first))},
                                body_factory=_first_then(first, body))
        return response.json() if response.content else None

    def download(self, path: str, destination: Path, *, params: dict[str, Any] | None = None,
                 progress: Progress | None = None, block: int = 1 << 20) -> Path:
        """GET to a file, streamed, written under a temporary name then renamed (no half files)."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.part")
        with self.request("GET", path, params=params, stream=True) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            try:
                with open(partial, "wb") as fh:
                    for chunk in response.iter_content(block):
                        fh.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                os.replace(partial, destination)
            finally:
                partial.unlink(missing_ok=True)
        return destination


def _first_then(first: MultipartStream, make: Callable[[], MultipartStream]) -> Callable[[], MultipartStream]:
    """The body built to size the headers is sent first; retries build fresh ones."""
    used = [False]

    def factory() -> MultipartStream:
        if not used[0]:
            used[0] = True
            return first
        return make()

    return factory


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: (",".join(map(str, v)) if isinstance(v, list | tuple) else v) for k, v in params.items()
            if v is not None}


def iter_pages(fetch: Callable[[int], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every item of a paginated list (``{"items", "total", "page", "per_page"}``)."""
    page = 1
    seen = 0
    while True:
        body = fetch(page)
        items = body.get("items", [])
        yield from items
        seen += len(items)
        if not items or seen >= int(body.get("total", 0)):
            return
        page += 1
