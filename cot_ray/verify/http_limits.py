"""Bounds on one HTTP request, as ASGI middleware, and JSON for every error the app answers.

A replica must not let one client cost it memory or time that other clients need:

- :class:`BodyLimit` counts the body bytes actually received, whatever the framing: a declared
  ``Content-Length`` over the limit is refused unread, and a chunked (or lying) upload is cut
  off as soon as the bytes read pass it. Either way the answer is 413 and the connection is
  closed, so the rest of the body is never read, buffered or parsed.
- :class:`TimeLimit` answers 504 when a request takes longer than its limit, the body upload
  included (a slow upload holds a connection and its buffers). A handler on the event loop is
  cancelled at its next ``await``; one in the thread pool runs to its end first (threads cannot be
  cancelled). Scoring is bounded per item and per request, so this bounds what waits (uploads,
  queues, batches), not what runs.
- :func:`json_errors` makes the last layer answer like the others: an unexpected exception is a
  500 whose body is ``{"detail": ...}``, the shape of FastAPI's own 4xx errors (validation,
  unknown route, wrong method), so a client parses every error the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


def error(status: int, detail: str, close: bool = False) -> JSONResponse:
    """The one error shape: ``{"detail": ...}``. ``close`` ends the connection after it, for a
    request whose body is left unread."""
    return JSONResponse({"detail": detail}, status_code=status, headers={"connection": "close"} if close else None)


class BodyLimit:
    """Read the whole body (at most ``max_bytes``) before the app runs; past that, 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            shown = declared[:20].decode(errors="replace")
            await self._refuse(f"request body of {shown} bytes", scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(f"request body of {size}+ bytes", scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> dict:
            """The body read above, once; then the connection's own messages (disconnect)."""
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, what: str, scope: dict, receive: Callable, send: Callable) -> None:
        await error(413, f"{what}; at most {self.max_bytes}", close=True)(scope, receive, send)


class TimeLimit:
    """Answer 504 when the app has not answered within ``seconds()`` (read per request, so a
    replica's configured limit applies to the app it serves)."""

    def __init__(self, app: ASGIApp, seconds: Callable[[], float]) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: dict) -> None:
            nonlocal started
            started = True
            await send(message)

        limit = self.seconds()
        try:
            async with asyncio.timeout(limit) as deadline:
                await self.app(scope, receive, send_tracked)
        except TimeoutError:
            if not deadline.expired():
                raise  # the app's own TimeoutError: a bug, answered as one
            log.warning("%s %s took over %gs", scope.get("method"), scope.get("path"), limit)
            if not started:  # else the client already has a (truncated) answer
                await error(504, f"the request took longer than {limit:g}s", close=True)(scope, receive, send)


async def _internal_error(request: Request, err: Exception) -> JSONResponse:
    """Starlette logs the exception after this answer is sent; the client gets its type only."""
    return error(500, f"internal error ({type(err).__name__})")


def json_errors(app: FastAPI) -> None:
    """Unexpected exceptions answer 500 in the ``{"detail": ...}`` shape."""
    app.add_exception_handler(Exception, _internal_error)


def bounded(app: FastAPI, max_bytes: int, seconds: Callable[[], float]) -> None:
    """Install all of the above on ``app``: the time limit outermost, so it covers the upload."""
    json_errors(app)
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.add_middleware(TimeLimit, seconds=seconds)

