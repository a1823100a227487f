"""ASGI middleware of the plugin app: authentication and body-size limits before any body is read.

FastAPI parses (and buffers) a request body before any dependency runs, so an anonymous client could make the
api-server read and validate megabytes before the route's authentication dependency refuses it. This guard
runs first: no credential → 401, an invalid one → 403, a body over the limit → 413, each with the API's error
body. It covers every route of the app, the OpenAPI description and the docs pages included.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: a request body (JSON) at most this large; a spec is the largest JSON we take
MAX_BODY_BYTES = int(os.environ.get("MLPIPE_API_MAX_BODY_BYTES", str(4 * 1024 * 1024)))
#: one uploaded source-snapshot file at most this large (v1 snapshots are capped at 300 MB in total)
MAX_OBJECT_BYTES = int(os.environ.get("MLPIPE_API_MAX_OBJECT_BYTES", str(100 * 1024 * 1024)))
_OBJECT_ROUTE = re.compile(r"/api/v1/snapshots/objects/[^/]+$")


def _too_large_error(limit: int) -> Exception:
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing passes it on as a 413 instead of
    turning it into "There was an error parsing the body"."""
    from starlette.exceptions import HTTPException

    return HTTPException(413, f"request body is over the limit of {limit} bytes")


def error_body(code: str, message: str) -> bytes:
    """The API's one error shape (``ErrorResponse`` in the OpenAPI description)."""
    return json.dumps({"error": {"code": code, "message": message}, "detail": message}).encode()


async def _respond(send: Send, status: int, code: str, message: str, extra: list | None = None) -> None:
    body = error_body(code, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def _token(headers: dict[bytes, bytes]) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth.split(" ", 1)[1].strip() or None
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "_token" and value:
            return value
    return None


async def _authenticate(scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
    """None when the caller is authenticated; else the status and message to refuse with."""
    from airflow.api_fastapi.app import get_auth_manager
    from jwt import ExpiredSignatureError, InvalidTokenError

    token = _token(headers)
    if token is None:
        state = scope.get("state") or {}
        if state.get("user") is not None and state.get("user_authenticated_via") is not None:
            return None  # Airflow's own JWT refresh middleware already validated the session cookie
        if _all_admins():
            return None  # simple_auth_manager_all_admins: the operator turned authentication off
        return 401, "Not authenticated: send an Airflow token as 'Authorization: Bearer <token>'"
    try:
        await get_auth_manager().get_user_from_token(token)
    except ExpiredSignatureError:
        return 401, "Token expired"
    except InvalidTokenError:
        return 403, "Invalid JWT token"
    return None


async def _refused(scope: Scope, headers: dict[bytes, bytes], send: Send) -> bool:
    """Answer 401/403 and return True unless the caller is authenticated."""
    refused = await _authenticate(scope, headers)
    if refused is None:
        return False
    status, message = refused
    extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
    await _respond(send, status, "Unauthorized" if status == 401 else "Forbidden", message, extra)
    return True


def _all_admins() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("core", "simple_auth_manager_all_admins", fallback=False) and "SimpleAuthManager" in (
        conf.get("core", "auth_manager", fallback="") or "")


class GuardMiddleware:
    """Authentication and size limits for every HTTP request of the wrapped app."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        if await _refused(scope, headers, send):
            return
        limit = MAX_OBJECT_BYTES if _OBJECT_ROUTE.search(scope.get("path", "")) else MAX_BODY_BYTES
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                await _respond(send, 400, "BadRequest", "Content-Length is not a number")
                return
            if too_large:
                await _respond(send, 413, "PayloadTooLarge",
                               f"request body of {int(declared)} bytes is over the limit of {limit} bytes")
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large_error(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        from starlette.exceptions import HTTPException

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:  # raised by limited_receive outside a route's own handling
            if exc.status_code != 413 or started:
                raise
            await _respond(send, 413, "PayloadTooLarge", str(exc.detail))


class UnroutablePathMiddleware:
    """Root middleware of the api-server for ``/mlpipe`` paths its mount cannot route.

    Starlette's mount matches ``/mlpipe/<path>`` with ``.*``, which does not match a line break, so such a
    request would reach Airflow's own 404 (a different error body) instead of this API. Answer it here, in
    the API's error shape and after the same authentication.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], prefix: str = "/mlpipe") -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith(self.prefix) and "\n" in path):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        if await _refused(scope, headers, send):
            return
        await _respond(send, 404, "NotFound", "Not Found: a path segment of this API cannot hold a line break")
