"""Which WebSocket the gate records at which path, and the upstream WebSocket both kinds open.

- `/v1/responses`: the Responses API's WebSocket mode, recorded turn by turn as streamed HTTP calls
  (websocket_turns.py, core/responses_websocket.py);
- `/v1/realtime` and `/v1/live/sessions`: conversations, recorded whole as sessions (websocket_sessions.py,
  core/websocket_session.py).

Any other upgrade is refused with a 404 in the OpenAI error shape: the gate would have nothing to key it by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inference_gate.core.dialects import route_of
from inference_gate.core.errors import GateError, error_response
from inference_gate.core.forwarding import upstream_subprotocols, upstream_target, upstream_websocket_headers
from inference_gate.core.http_models import HttpRequest, HttpResponse
from inference_gate.http.websocket import (
    WebSocket,
    WebSocketLimits,
    WebSocketUpgrade,
    connect_websocket,
    offered_subprotocols,
)

if TYPE_CHECKING:
    from inference_gate.proxy.gate import Gate

TURN_ENDPOINTS = frozenset({"responses"})
SESSION_ENDPOINTS = frozenset({"realtime", "live.sessions"})


async def run_websocket(gate: Gate, request: HttpRequest, upgrade: WebSocketUpgrade) -> HttpResponse | None:
    """Run the session of an upgrade request, or refuse it."""
    endpoint = route_of(request.path).endpoint
    if endpoint in TURN_ENDPOINTS:
        from inference_gate.proxy.websocket_turns import run_turns

        await run_turns(gate, request, upgrade)
        return None
    if endpoint in SESSION_ENDPOINTS:
        from inference_gate.proxy.websocket_sessions import run_session

        return await run_session(gate, request, upgrade)
    return error_response(
        GateError(
            404,
            f"The gate records WebSockets at /v1/responses, /v1/realtime and /v1/live/sessions, not {request.path}.",
            code="websocket_not_recorded",
            retryable=False,
        )
    )


async def open_upstream(gate: Gate, request: HttpRequest, limits: WebSocketLimits) -> tuple[WebSocket, str | None]:
    """The upstream WebSocket for a client's upgrade `request`, and the subprotocol the upstream chose.

    With the gate's own key, the client's credentials (headers, credential query values, and a key offered as a
    subprotocol) are dropped and the gate's key is sent instead, as for HTTP.
    """
    recorder = gate.recorder
    if recorder is None:
        raise RuntimeError("only a recording gate opens upstream WebSockets")
    route, routed_target, pool = recorder.route(request.target)
    api_key = route.api_key
    websocket, _headers, subprotocol = await connect_websocket(
        pool.open_stream,
        host=pool.url.host_header.decode("ascii"),
        target=pool.url.path_prefix + upstream_target(routed_target, api_key=api_key),
        headers=upstream_websocket_headers(request.headers, api_key=api_key, dialect=route_of(request.path).dialect),
        subprotocols=upstream_subprotocols(offered_subprotocols(request.headers), api_key=api_key),
        limits=limits,
    )
    return websocket, subprotocol
