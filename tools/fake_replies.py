"""The fake OpenAI API's replies: what tools/fake_upstream.py answers, as pure functions of the request.

Every byte of a reply is derived from the request body, never from the clock, so recording the same request
twice yields byte-identical cassettes. A request's `model` selects a failure mode (`fault-429`,
`fault-reset-midstream`, ...), so that each fault has its own cache key in the gate. No trio and no h11 here:
the bodies, the chunks and the SSE events can be built and tested without a socket.
"""

from __future__ import annotations

import base64
import dataclasses
import email.message
import email.parser
import email.policy
import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

OK_INSTRUCTION = 'Reply with **ONLY** "OK."'
TOOL_CALL_ARGUMENTS = {"city": "Paris"}
EMBEDDING_DIMENSIONS = 8
SLOW_FAULT_DELAY_S = 30.0
TEXT_DELTA_CHARS = 4
ARGUMENTS_DELTA_CHARS = 5
CREATED_EPOCH_S = 1_700_000_000
REASONING_MODEL_PREFIX = "reasoning-"  # a compatible server's reasoning model: extra stream fields
REASONING_TEXT = "The user wants an echo; I will échoer."
REASONING_COST_USD = 0.000125

MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer "
    "auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're "
    "accessing the API from your browser and are prompting for a username and password. You can obtain an "
    "API key from https://platform.openai.com/account/api-keys."
)
INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you "
    "have trouble figuring out how to fix this, please visit https://help.openai.com.)"
)

CHAT_COMPLETIONS = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
ROUTES = (
    ("POST", CHAT_COMPLETIONS),
    ("POST", RESPONSES),
    ("POST", EMBEDDINGS),
    ("GET", MODELS),
    ("POST", TRANSCRIPTIONS),
)
LISTED_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")

JSON_CONTENT_TYPE = b"application/json"
SSE_CONTENT_TYPE = b"text/event-stream; charset=utf-8"
ERROR_CONTENT_TYPE = b"application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the fake received it, kept so that tests can inspect what the gate forwarded."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    json: Any | None

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]


@dataclass(frozen=True, slots=True)
class Reply:
    """What to send back: a status line and headers, then the body in parts.

    The parts of an event stream are whole SSE events: the fake writes each one in awkward slices, waits
    for `hold` after the first and sleeps `event_delay_s` between them. Other parts are sent as one chunk
    each. With `drop_after_parts`, the connection is closed after that many parts, without the terminating
    chunk, as when an upstream connection breaks mid-body.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    parts: list[bytes]
    is_event_stream: bool = False
    drop_after_parts: int | None = None
    delay_s: float = 0.0


class InvalidRequest(Exception):
    """A request body that OpenAI would refuse with 400 invalid_request_error."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --- Values derived from the request body -------------------------------------------------------------


def derived_hex(label: str, seed: bytes, length: int) -> str:
    """`length` hex digits that depend only on `label` and the request body `seed`."""
    return hashlib.sha256(label.encode() + b"\0" + seed).hexdigest()[:length]


def _created_s(seed: bytes) -> int:
    """A plausible Unix time for `created`, from the request body rather than the clock."""
    return CREATED_EPOCH_S + int(derived_hex("created", seed, 8), 16) % 10_000_000


def token_count(text: str) -> int:
    """A rough token count (about four bytes a token), which is all a usage object needs here."""
    return max(1, len(text.encode()) // 4)


def pieces(text: str, size: int) -> list[str]:
    """`text` cut into pieces of `size` characters, as a model streams its output."""
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return " ".join(text for text in texts if isinstance(text, str))
    return ""


def _last_user_text(messages: Any) -> str:
    """The prompt: a plain string input, or the text of the last user message in a list."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return text_of(message.get("content"))
    return ""


def reply_text(prompt: str) -> str:
    """The assistant's answer: `OK.` when told so, else an echo with multi-byte UTF-8 for the SSE splits."""
    if OK_INSTRUCTION in prompt:
        return "OK."
    return f"Echo: {prompt} — héllo wörld 你好 🌍"


def _requested_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    return model


def _first_tool_name(body: dict[str, Any]) -> str | None:
    """The function name of the first tool, which the fake always calls; None when there are no tools."""
    tools = body.get("tools")
    if not tools:
        return None
    first = tools[0] if isinstance(tools, list) else None
    function = first.get("function") if isinstance(first, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        param = "tools[0].function.name"
        raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return name


# --- Wire bodies -------------------------------------------------------------------------------------


def error_payload(message: str, *, error_type: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def masked_key(key: str) -> str:
    """An API key as OpenAI shows it in errors: long keys keep 8 leading and 4 trailing characters."""
    if len(key) <= 12:
        return key
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def invalid_request_payload(message: str, *, param: str | None = None) -> dict:
    return error_payload(message, error_type="invalid_request_error", code=None, param=param)


def _invalid_key_payload(key: str) -> dict:
    message = (
        f"Incorrect API key provided: {masked_key(key)}. "
        "You can find your API key at https://platform.openai.com/account/api-keys."
    )
    return error_payload(message, error_type="invalid_request_error", code="invalid_api_key")


def _model_not_found_payload(model: str) -> dict:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return error_payload(message, error_type="invalid_request_error", code="model_not_found")


def _rate_limit_payload(model: str) -> dict:
    message = (
        f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 3, "
        "Used 3, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits "
        "to learn more."
    )
    return error_payload(message, error_type="requests", code="rate_limit_exceeded")


def _server_error_payload(seed: bytes) -> dict:
    message = (
        "The server had an error processing your request. Sorry about that! You can retry your request, "
        "or contact us through our help center at help.openai.com if you keep seeing this error. (Please "
        f"include the request ID req_{derived_hex('request', seed, 32)} in your email.)"
    )
    return error_payload(message, error_type="server_error", code=None)


def _chat_usage(prompt: str, completion: str) -> dict:
    prompt_tokens, completion_tokens = token_count(prompt), token_count(completion)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_header(seed: bytes, model: str, object_type: str) -> dict:
    return {
        "id": "chatcmpl-" + derived_hex("chatcmpl", seed, 29),
        "object": object_type,
        "created": _created_s(seed),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_" + derived_hex("fingerprint", seed, 10),
    }


def chat_completion(body: dict[str, Any], seed: bytes) -> dict:
    """A non-streamed `chat.completion`: a text answer, or a call to the first tool when tools are given."""
    model = _requested_model(body)
    prompt = _last_user_text(body.get("messages"))
    tool_name = _first_tool_name(body)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if tool_name is None:
        message["content"] = completion = reply_text(prompt)
        finish_reason = "stop"
    else:
        completion = orjson.dumps(TOOL_CALL_ARGUMENTS).decode()
        call_id = "call_" + derived_hex("call", seed, 24)
        function = {"name": tool_name, "arguments": completion}
        message["tool_calls"] = [{"id": call_id, "type": "function", "function": function}]
        finish_reason = "tool_calls"
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    usage = _chat_usage(prompt, completion)
    return {**_chat_header(seed, model, "chat.completion"), "choices": [choice], "usage": usage}


def chat_completion_chunks(body: dict[str, Any], seed: bytes) -> list[dict]:
    """The `chat.completion.chunk` objects of a streamed answer, in order, without the final `[DONE]`."""
    model = _requested_model(body)
    prompt = _last_user_text(body.get("messages"))
    tool_name = _first_tool_name(body)
    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True

    if tool_name is None:
        completion = reply_text(prompt)
        first_delta: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        deltas = [{"content": piece} for piece in pieces(completion, TEXT_DELTA_CHARS)]
        finish_reason = "stop"
    else:
        completion = orjson.dumps(TOOL_CALL_ARGUMENTS).decode()
        call = {
            "index": 0,
            "id": "call_" + derived_hex("call", seed, 24),
            "type": "function",
            "function": {"name": tool_name, "arguments": ""},
        }
        first_delta = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
        deltas = [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            for piece in pieces(completion, ARGUMENTS_DELTA_CHARS)
        ]
        finish_reason = "tool_calls"

    reasoning = model.startswith(REASONING_MODEL_PREFIX)
    if reasoning:
        # vLLM and DeepSeek stream the model's reasoning as `reasoning_content` deltas before the answer, and
        # OpenRouter adds the price to the usage as `cost`: fields the OpenAI SDK keeps only as extras.
        thoughts = [
            {"content": None, "reasoning_content": piece} for piece in pieces(REASONING_TEXT, TEXT_DELTA_CHARS)
        ]
        deltas = thoughts + deltas
    steps = [(first_delta, None)] + [(delta, None) for delta in deltas] + [({}, finish_reason)]
    choice_lists = [
        [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] for delta, finish in steps
    ]

    header = _chat_header(seed, model, "chat.completion.chunk")
    usage_field = {"usage": None} if include_usage else {}
    chunks = [{**header, "choices": choice_list, **usage_field} for choice_list in choice_lists]
    if include_usage:
        usage = _chat_usage(prompt, completion) | ({"cost": REASONING_COST_USD} if reasoning else {})
        chunks.append({**header, "choices": [], "usage": usage})
    for index, chunk in enumerate(chunks):
        chunk["obfuscation"] = derived_hex(f"obfuscation-{index}", seed, 6 + index % 7)
    return chunks


def _responses_ids(seed: bytes) -> tuple[str, str]:
    return "resp_" + derived_hex("resp", seed, 50), "msg_" + derived_hex("msg", seed, 50)


def _output_text_part(text: str) -> dict:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(message_id: str, text: str, *, status: str) -> dict:
    content = [_output_text_part(text)] if status == "completed" else []
    return {"id": message_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def _previous_response_id(body: dict[str, Any]) -> str | None:
    previous = body.get("previous_response_id")
    return previous if isinstance(previous, str) else None


def response_text(body: dict[str, Any]) -> str:
    """A Responses API answer: the echo of the prompt, naming the response it continues when chained, so that a
    reply shows whether `previous_response_id` reached the server."""
    text = reply_text(_last_user_text(body.get("input")))
    previous = _previous_response_id(body)
    return text if previous is None else f"{text} (continuing {previous})"


def response_object(body: dict[str, Any], seed: bytes, *, completed: bool = True) -> dict:
    """A Responses API `response`; in progress it has no output and no usage yet."""
    model = _requested_model(body)
    prompt = _last_user_text(body.get("input"))
    text = response_text(body)
    response_id, message_id = _responses_ids(seed)
    usage = None
    output: list[dict] = []
    if completed:
        input_tokens, output_tokens = token_count(prompt), token_count(text)
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        output = [_message_item(message_id, text, status="completed")]
    return {
        "id": response_id,
        "object": "response",
        "created_at": _created_s(seed),
        "status": "completed" if completed else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": _previous_response_id(body),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def response_events(body: dict[str, Any], seed: bytes) -> list[dict]:
    """The events of a streamed Responses API answer, in OpenAI's order, numbered by `sequence_number`."""
    in_progress = response_object(body, seed, completed=False)
    completed = response_object(body, seed)
    text = response_text(body)
    _, message_id = _responses_ids(seed)
    position = {"item_id": message_id, "output_index": 0, "content_index": 0}
    events: list[dict] = [
        {"type": "response.created", "response": in_progress},
        {"type": "response.in_progress", "response": in_progress},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": _message_item(message_id, text, status="in_progress"),
        },
        {"type": "response.content_part.added", **position, "part": _output_text_part("")},
    ]
    for index, piece in enumerate(pieces(text, TEXT_DELTA_CHARS)):
        obfuscation = derived_hex(f"obfuscation-{index}", seed, 6 + index % 7)
        delta = {"type": "response.output_text.delta", **position, "delta": piece, "logprobs": []}
        events.append({**delta, "obfuscation": obfuscation})
    events += [
        {"type": "response.output_text.done", **position, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **position, "part": _output_text_part(text)},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": _message_item(message_id, text, status="completed"),
        },
        {"type": "response.completed", "response": completed},
    ]
    return [
        {"type": event["type"], "sequence_number": number, **event} for number, event in enumerate(events)
    ]


def _embedding_inputs(raw_input: Any) -> list[Any]:
    """The separate inputs of an embeddings request: a string, a token list, or a list of either."""
    if isinstance(raw_input, str):
        return [raw_input]
    if isinstance(raw_input, list) and raw_input:
        return [raw_input] if isinstance(raw_input[0], int) else raw_input
    raise InvalidRequest("'input' : input must be a string or an array of strings", param="input")


def embedding_vector(item: Any) -> list[float]:
    """A small vector from the input's hash; k/128 values are exact in float32, so base64 round-trips."""
    digest = hashlib.sha256(orjson.dumps(item)).digest()
    return [(byte - 128) / 128 for byte in digest[:EMBEDDING_DIMENSIONS]]


def embeddings_list(body: dict[str, Any]) -> dict:
    """An embeddings `list`, as floats or as base64 float32 (which the SDK asks for by default)."""
    model = _requested_model(body)
    inputs = _embedding_inputs(body.get("input"))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector: list[float] | str = embedding_vector(item)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{EMBEDDING_DIMENSIONS}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(token_count(orjson.dumps(item).decode()) for item in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def models_list() -> dict:
    data = [
        {"id": model, "object": "model", "created": CREATED_EPOCH_S, "owned_by": "system"}
        for model in LISTED_MODELS
    ]
    return {"object": "list", "data": data}


# --- Replies: status, headers and body framing ------------------------------------------------------


def openai_headers(seed: bytes, content_type: bytes) -> list[tuple[bytes, bytes]]:
    """The headers api.openai.com and its CDN send, with fixed or body-derived values."""
    return [
        (b"content-type", content_type),
        (b"openai-organization", b"org-fake"),
        (b"openai-processing-ms", b"321"),
        (b"openai-project", b"proj_fake"),
        (b"openai-version", b"2020-10-01"),
        (b"x-request-id", b"req_" + derived_hex("request", seed, 32).encode()),
        (b"x-ratelimit-limit-requests", b"10000"),
        (b"x-ratelimit-limit-tokens", b"200000"),
        (b"x-ratelimit-remaining-requests", b"9999"),
        (b"x-ratelimit-remaining-tokens", b"199950"),
        (b"x-ratelimit-reset-requests", b"6ms"),
        (b"x-ratelimit-reset-tokens", b"15ms"),
        (b"server", b"cloudflare"),
        (b"cf-ray", derived_hex("cf-ray", seed, 16).encode() + b"-AMS"),
        (
            b"set-cookie",
            b"__cf_bm=" + derived_hex("cookie", seed, 43).encode() + b"; path=/; "
            b"expires=Thu, 01-Jan-2026 00:30:00 GMT; domain=.api.openai.com; HttpOnly; Secure; SameSite=None",
        ),
        (b"alt-svc", b'h3=":443"; ma=86400'),
    ]


def _accepts_gzip(request: ReceivedRequest) -> bool:
    codings = request.headers.get("accept-encoding", "").split(",")
    return any(coding.split(";")[0].strip().lower() == "gzip" for coding in codings)


def _content_coding(request: ReceivedRequest) -> str | None:
    """The coding for a JSON body: forced by the gzip/deflate faults, else gzip when the client accepts it."""
    model = request.json.get("model") if isinstance(request.json, dict) else None
    if model == "fault-gzip":
        return "gzip"
    if model == "fault-deflate":
        return "deflate"
    return "gzip" if _accepts_gzip(request) else None


def json_reply(
    request: ReceivedRequest,
    status: int,
    payload: dict,
    *,
    content_type: bytes = JSON_CONTENT_TYPE,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> Reply:
    """A JSON body, encoded as negotiated and sent in two chunks like the CDN does."""
    body = orjson.dumps(payload)
    headers = openai_headers(request.body, content_type) + (extra_headers or [])
    coding = _content_coding(request)
    if coding == "gzip":
        body = gzip.compress(body, mtime=0)
    elif coding == "deflate":
        body = zlib.compress(body)
    if coding is not None:
        headers.append((b"content-encoding", coding.encode()))
    middle = len(body) // 2
    return Reply(status=status, headers=headers, parts=[body[:middle], body[middle:]])


def error_reply(request: ReceivedRequest, status: int, payload: dict, **kwargs: Any) -> Reply:
    return json_reply(request, status, payload, content_type=ERROR_CONTENT_TYPE, **kwargs)


def _data_event(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _named_event(payload: dict) -> bytes:
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def event_stream_reply(request: ReceivedRequest, events: list[bytes]) -> Reply:
    headers = openai_headers(request.body, SSE_CONTENT_TYPE)
    return Reply(status=200, headers=headers, parts=events, is_event_stream=True)


def _success_reply(request: ReceivedRequest, route: str, body: dict[str, Any]) -> Reply:
    seed = request.body
    streamed = body.get("stream") is True
    if route == CHAT_COMPLETIONS and streamed:
        events = [_data_event(chunk) for chunk in chat_completion_chunks(body, seed)]
        return event_stream_reply(request, [*events, b"data: [DONE]\n\n"])
    if route == CHAT_COMPLETIONS:
        return json_reply(request, 200, chat_completion(body, seed))
    if route == RESPONSES and streamed:
        return event_stream_reply(request, [_named_event(event) for event in response_events(body, seed)])
    if route == RESPONSES:
        return json_reply(request, 200, response_object(body, seed))
    return json_reply(request, 200, embeddings_list(body))


def _client_key(request: ReceivedRequest) -> str | None:
    """The key from `Authorization: Bearer`, else from Azure OpenAI's `api-key` header."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return request.headers.get("api-key") or None


def _route(request: ReceivedRequest) -> str | None:
    """The route a path ends with, under any base path: `/v1/...`, OpenRouter's `/api/v1/...`, Azure's
    `/openai/v1/...` and `/openai/deployments/{deployment}/...`."""
    for method, route in ROUTES:
        if request.method == method and request.path.endswith(route.removeprefix("/v1")):
            return route
    return None


def build_reply(request: ReceivedRequest, *, expected_api_key: str | None) -> Reply:
    """Decide the whole reply to `request`: auth, routing, body validation, faults, then the answer."""
    key = _client_key(request)
    if key is None:
        return error_reply(request, 401, invalid_request_payload(MISSING_KEY_MESSAGE))
    if expected_api_key is not None and key != expected_api_key:
        return error_reply(request, 401, _invalid_key_payload(key))
    route = _route(request)
    if route is None:
        message = f"Invalid URL ({request.method} {request.path})"
        return error_reply(request, 404, invalid_request_payload(message))
    if route == MODELS:
        return json_reply(request, 200, models_list())
    if route == TRANSCRIPTIONS:
        return transcription_reply(request)
    body = request.json
    if not isinstance(body, dict):
        return error_reply(request, 400, invalid_request_payload(INVALID_JSON_MESSAGE))
    try:
        return _fault_reply(request, route, body) or _success_reply(request, route, body)
    except InvalidRequest as invalid:
        return error_reply(request, 400, invalid_request_payload(invalid.message, param=invalid.param))


def _form_parts(request: ReceivedRequest) -> list[email.message.Message]:
    """The parts of a multipart/form-data body, read by the stdlib (not the gate's parser, which it tests)."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    return list(message.iter_parts()) if message.is_multipart() else []


def transcription_reply(request: ReceivedRequest) -> Reply:
    """`audio.transcriptions.create`: multipart in (`file` and `model` required), `{"text": ...}` out.

    The text names the file and its size, so a different upload gets a different transcript.
    """
    parts = {part.get_param("name", header="content-disposition"): part for part in _form_parts(request)}
    audio, model = parts.get("file"), parts.get("model")
    if audio is None or audio.get_filename() is None:
        return error_reply(request, 400, invalid_request_payload("Missing required parameter: 'file'.", param="file"))
    if model is None:
        return error_reply(request, 400, invalid_request_payload("Missing required parameter: 'model'.", param="model"))
    content = audio.get_payload(decode=True) or b""
    return json_reply(request, 200, {"text": f"Transcript of {audio.get_filename()} ({len(content)} bytes)."})


def _fault_reply(request: ReceivedRequest, route: str, body: dict[str, Any]) -> Reply | None:
    """The reply for a `fault-*` model (or the unknown `does-not-exist`); None for a well-behaved model."""
    model = body.get("model")
    if model == "fault-401":
        return error_reply(request, 401, _invalid_key_payload(_client_key(request) or ""))
    if model in ("fault-404", "does-not-exist"):
        return error_reply(request, 404, _model_not_found_payload(model))
    if model == "fault-429":
        retry_headers = [(b"retry-after", b"1"), (b"retry-after-ms", b"1000")]
        return error_reply(request, 429, _rate_limit_payload(model), extra_headers=retry_headers)
    if model == "fault-500":
        return error_reply(request, 500, _server_error_payload(request.body))
    if model in ("fault-reset-midbody", "fault-reset-midstream"):
        reply = _success_reply(request, route, body)
        return dataclasses.replace(reply, drop_after_parts=max(1, len(reply.parts) // 2))
    if model == "fault-slow":
        return dataclasses.replace(_success_reply(request, route, body), delay_s=SLOW_FAULT_DELAY_S)
    return None
