"""A fake OpenAI upstream that also speaks WebSocket: the Responses API's WebSocket mode, the Realtime API and Live
sessions, each on the path the official SDK derives from `base_url` (http becomes ws).

It is tools/fake_upstream.py's server (so plain HTTP calls, streamed Responses included, still work on the same
port), taking over any request that asks to upgrade: h11 parses that request and sends the `101`, and wsproto
frames the messages, with permessage-deflate when the client offers it. The handshake checks the credential as
the real API does, `Authorization: Bearer <key>` or the browser's `openai-insecure-api-key.<key>` subprotocol
(or an ephemeral key from `POST /v1/realtime/client_secrets`), and refuses a bad one with an HTTP 401 before any
upgrade. Each session's replies come from tools/fake_responses_socket.py, fake_realtime.py and fake_live.py, so
they derive from what the client sent; `mint_ids` gives every session new ids instead, as the real API does,
for tests of refresh and takes. Every session is kept in `sessions`, with its handshake and the messages the
client sent, so that tests can see exactly what a proxy forwarded.

Run it as a script for benchmarks: `python -m tools.fake_websocket --port 9999`.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import h11
import orjson
import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from tools.fake_live import LiveSession
from tools.fake_realtime import RealtimeSession
from tools.fake_replies import (
    ReceivedRequest,
    Reply,
    derived_hex,
    error_reply,
    invalid_request_payload,
    json_reply,
    masked_key,
)
from tools.fake_responses_socket import ResponsesSocketSession
from tools.fake_socket_session import SocketSession, Turn
from tools.fake_upstream import RECEIVE_SIZE_BYTES, FakeUpstream, _serve_until_signalled

RESPONSES_SOCKET = "/responses"
REALTIME = "/realtime"
LIVE = "/live/sessions"
CLIENT_SECRETS = "/realtime/client_secrets"
SOCKET_ROUTES = (RESPONSES_SOCKET, REALTIME, LIVE)
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
REALTIME_SUBPROTOCOL = "realtime"
EPHEMERAL_KEY_LIFETIME_S = 600
GOING_AWAY = 1001


@dataclass(slots=True)
class ReceivedSession:
    """One WebSocket session as the fake saw it: the upgrade request, what was agreed, and the client's messages."""

    request: ReceivedRequest
    subprotocols: list[str]
    extensions: str | None
    client_messages: list[str] = field(default_factory=list)
    close_code: int | None = None  # the first close frame's, either side's; 1006 when the client just went away

    @property
    def client_events(self) -> list[Any]:
        return [orjson.loads(message) for message in self.client_messages]


def socket_route(path: str) -> str | None:
    """The WebSocket API a path names, under any base path (`/v1/realtime`, `/openai/v1/realtime`, ...)."""
    for route in SOCKET_ROUTES:
        if path.endswith(route):
            return route
    return None


def offered_subprotocols(request: ReceivedRequest) -> list[str]:
    header = request.headers.get("sec-websocket-protocol", "")
    return [name.strip() for name in header.split(",") if name.strip()]


def socket_credential(request: ReceivedRequest) -> str | None:
    """The key from `Authorization: Bearer`, else from the `openai-insecure-api-key.<key>` subprotocol."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    for name in offered_subprotocols(request):
        if name.startswith(KEY_SUBPROTOCOL_PREFIX):
            return name.removeprefix(KEY_SUBPROTOCOL_PREFIX)
    return None


class FakeWebSocketUpstream(FakeUpstream):
    """The fake OpenAI API, with the three WebSocket APIs besides HTTP.

    `event_delay_s` (from FakeUpstream) is a sleep before every server event that answers a client message, which
    gives a recorded session a duration; `hold`, when set, pauses each answer after its first event.
    """

    def __init__(self, *, expected_api_key: str | None = None, mint_ids: bool = False) -> None:
        super().__init__(expected_api_key=expected_api_key)
        self.mint_ids = mint_ids
        self.sessions: list[ReceivedSession] = []
        self.ephemeral_keys: set[str] = set()

    # --- HTTP: ephemeral keys for the Realtime API ------------------------------------------------------

    def build_reply(self, request: ReceivedRequest) -> Reply:
        if request.method == "POST" and request.path.endswith(CLIENT_SECRETS):
            return self._client_secret_reply(request)
        return super().build_reply(request)

    def _client_secret_reply(self, request: ReceivedRequest) -> Reply:
        """`POST /v1/realtime/client_secrets`: an ephemeral `ek_` key that this fake then accepts on a socket."""
        refusal = self._key_refusal(request, socket_credential(request), allow_ephemeral=False)
        if refusal is not None:
            return refusal
        body = request.json if isinstance(request.json, dict) else {}
        session = body.get("session") if isinstance(body.get("session"), dict) else {"type": "realtime"}
        key = "ek_" + derived_hex(f"ephemeral-{len(self.ephemeral_keys)}", request.body, 32)
        self.ephemeral_keys.add(key)
        expires_at = 1_700_000_000 + EPHEMERAL_KEY_LIFETIME_S
        return json_reply(request, 200, {"value": key, "expires_at": expires_at, "session": session})

    def _key_refusal(self, request: ReceivedRequest, key: str | None, *, allow_ephemeral: bool) -> Reply | None:
        if key is None:
            return error_reply(request, 401, invalid_request_payload("You didn't provide an API key."))
        if allow_ephemeral and key in self.ephemeral_keys:
            return None
        if self.expected_api_key is not None and key != self.expected_api_key:
            message = (
                f"Incorrect API key provided: {masked_key(key)}. "
                "You can find your API key at https://platform.openai.com/account/api-keys."
            )
            payload = {
                "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
            }
            return error_reply(request, 401, payload)
        return None

    # --- The upgrade ----------------------------------------------------------------------------------

    async def serve_upgrade(
        self, stream: trio.abc.Stream, connection: h11.Connection, request: ReceivedRequest
    ) -> bool:
        route = socket_route(request.path)
        if route is None:
            return False
        query = {name: values[0] for name, values in parse_qs(request.target.partition("?")[2]).items()}
        refusal = self._upgrade_refusal(request, route, query)
        if refusal is not None:
            await self._send_reply(stream, connection, refusal)
            return True
        offered = offered_subprotocols(request)
        subprotocol = REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None
        deflate = PerMessageDeflate()
        offers = [
            offer.strip() for offer in request.headers.get("sec-websocket-extensions", "").split(",") if offer.strip()
        ]
        accepted = server_extensions_handshake(offers, [deflate])
        headers = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", generate_accept_token(request.headers["sec-websocket-key"].encode())),
            (b"x-request-id", b"req_" + derived_hex("request", request.target.encode(), 32).encode()),
        ]
        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))
        if accepted is not None:
            headers.append((b"sec-websocket-extensions", accepted))
        await stream.send_all(connection.send(h11.InformationalResponse(status_code=101, headers=headers)))
        websocket = Connection(
            ConnectionType.SERVER, [deflate] if deflate.enabled() else [], trailing_data=connection.trailing_data[0]
        )
        received = ReceivedSession(request, offered, accepted.decode() if accepted else None)
        self.sessions.append(received)
        await self._serve_session(stream, websocket, self._new_session(route, query), received)
        return True

    def _upgrade_refusal(self, request: ReceivedRequest, route: str, query: dict[str, str]) -> Reply | None:
        if request.method != "GET" or request.headers.get("upgrade", "").lower() != "websocket":
            return error_reply(request, 400, invalid_request_payload("Expected a WebSocket upgrade request."))
        if "sec-websocket-key" not in request.headers:
            return error_reply(request, 400, invalid_request_payload("Missing Sec-WebSocket-Key header."))
        refusal = self._key_refusal(request, socket_credential(request), allow_ephemeral=route == REALTIME)
        if refusal is not None:
            return refusal
        if route == REALTIME and "model" not in query and "call_id" not in query:
            message = "Missing required parameter: 'model'."
            return error_reply(request, 400, invalid_request_payload(message, param="model"))
        return None

    def _new_session(self, route: str, query: dict[str, str]) -> SocketSession:
        salt = f"session-{len(self.sessions)}" if self.mint_ids else ""
        if route == REALTIME:
            return RealtimeSession(query.get("model", "gpt-realtime"), salt=salt)
        if route == LIVE:
            return LiveSession(salt=salt)
        return ResponsesSocketSession(salt=salt)

    # --- The session ----------------------------------------------------------------------------------

    async def _serve_session(
        self, stream: trio.abc.Stream, websocket: Connection, session: SocketSession, received: ReceivedSession
    ) -> None:
        """Answer client messages until either side closes; a client that vanishes ends only its own session."""
        try:
            await self._send_turn(stream, websocket, Turn(session.opening()), received, paced=False)
            fragments: list[str] = []
            while websocket.state is ConnectionState.OPEN:
                for event in websocket.events():
                    if isinstance(event, TextMessage | BytesMessage):
                        data = event.data if isinstance(event, TextMessage) else event.data.decode("utf-8", "replace")
                        fragments.append(data)
                        if not event.message_finished:
                            continue
                        message, fragments = "".join(fragments), []
                        received.client_messages.append(message)
                        if not await self._send_turn(stream, websocket, session.receive(message), received, paced=True):
                            return
                    elif isinstance(event, Ping):
                        await stream.send_all(websocket.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        received.close_code = event.code
                        if websocket.state is ConnectionState.REMOTE_CLOSING:
                            await stream.send_all(websocket.send(event.response()))
                        return
                if websocket.state is ConnectionState.OPEN:
                    data = await stream.receive_some(RECEIVE_SIZE_BYTES)
                    websocket.receive_data(data or None)
        except trio.BrokenResourceError:
            received.close_code = received.close_code or 1006

    async def _send_turn(
        self, stream: trio.abc.Stream, websocket: Connection, turn: Turn, received: ReceivedSession, *, paced: bool
    ) -> bool:
        """Send a turn's events; False when it ended the connection (a drop, or the server's close)."""
        for index, event in zip(itertools.count(), turn.events, strict=False):
            if index == turn.drop_after:
                await trio.aclose_forcefully(stream)
                return False
            if index == 1 and paced:
                await self._wait_for_hold()
            if paced:
                await trio.sleep(self.event_delay_s)
            await stream.send_all(websocket.send(TextMessage(data=orjson.dumps(event).decode())))
        if turn.close is None:
            return True
        received.close_code = turn.close.code
        await stream.send_all(websocket.send(CloseConnection(code=turn.close.code, reason=turn.close.reason)))
        with trio.move_on_after(1):
            while websocket.state is not ConnectionState.CLOSED:
                data = await stream.receive_some(RECEIVE_SIZE_BYTES)
                websocket.receive_data(data or None)
                for _ in websocket.events():
                    pass
        return False


# --- Script entry point -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI API, WebSockets included, until signalled.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--expected-api-key", default=None, help="refuse any other key with 401")
    parser.add_argument("--mint-ids", action="store_true", help="new ids in every session, as the real API")
    arguments = parser.parse_args()
    upstream = FakeWebSocketUpstream(expected_api_key=arguments.expected_api_key, mint_ids=arguments.mint_ids)
    trio.run(_serve_until_signalled, upstream, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
