"""A plain HTTP client for APIs that need no SDK here (Gemini's REST API): the standard library's, in a thread."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
import trio

TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class PlainResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return orjson.loads(self.body)


def _post(url: str, target: str, body: bytes, headers: dict[str, str]) -> PlainResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    try:
        connection.request("POST", target, body=body, headers={"content-type": "application/json", **headers})
        response = connection.getresponse()
        return PlainResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


async def post_json(url: str, target: str, json_body, headers: dict[str, str] | None = None) -> PlainResponse:
    """POST `json_body` to `target` on the server at `url`; the whole response, read to its end."""
    return await trio.to_thread.run_sync(_post, url, target, orjson.dumps(json_body), headers or {})
