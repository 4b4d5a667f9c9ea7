"""ASGI middleware bounding request bodies (size, stalls, how many at once) and refusing keyless /v1 calls early."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from metric.deploy.service.errors import error_response
from metric.deploy.service.scopes import NO_KEY, request_key
from metric.deploy.service.workers import release_free_memory

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimit:
    """ASGI middleware over every request body, before the app parses it:
    - a /v1 call without a valid API key gets 401 before one byte of its body is read;
    - a body over `max_bytes` gets 413 (by Content-Length, or by counting a streamed body);
    - a body that stalls for `timeout_s` between chunks gets 408 and its buffer is dropped;
    - at most `max_uploads` bodies are read at once (so at most max_uploads x max_bytes held): beyond, 503 with
      Retry-After at once."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        max_bytes: int,
        key_valid: Callable[[str | None], bool] | None = None,
        timeout_s: float = 10.0,
        max_uploads: int = 16,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.key_valid = key_valid or (lambda key: True)
        self.timeout_s = timeout_s
        self.max_uploads = max_uploads
        self.uploads = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):  # no body to hold: /healthz
            return await self.app(scope, receive, send)  # answers under any upload load
        headers = dict(scope.get("headers") or [])
        if scope["path"].startswith("/v1/") and not self.key_valid(request_key(headers)):
            return await error_response(401, "unauthorized", NO_KEY)(scope, receive, send)
        length = headers.get(b"content-length")
        too_large = error_response(
            413, "too_large", f"the request is over {self.max_bytes:,} bytes; send fewer or smaller images."
        )
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await too_large(scope, receive, send)
        if self.uploads >= self.max_uploads:
            return await error_response(
                503, "busy", f"{self.uploads} uploads are being received; retry shortly.", {"Retry-After": "1"}
            )(scope, receive, send)
        self.uploads += 1  # one event loop: no lock needed
        size = 0
        try:
            chunks, more = [], True
            while more:
                try:
                    message = await asyncio.wait_for(receive(), self.timeout_s)
                except TimeoutError:
                    return await error_response(
                        408, "timeout", f"the request body stalled for {self.timeout_s:g} s; send it at once."
                    )(scope, receive, send)
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > self.max_bytes:
                    return await too_large(scope, receive, send)
            body = b"".join(chunks)
        finally:
            self.uploads -= 1
            if self.uploads == 0 and size > 2**20:  # the last large body: hand the freed buffers back
                release_free_memory()
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)
