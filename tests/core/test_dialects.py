import orjson
import pytest

from inference_gate.core.dialects import (
    Dialect,
    Route,
    auth_header,
    auth_value,
    endpoint_name,
    error_document,
    route_of,
)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/chat/completions", Route(Dialect.OPENAI, "chat.completions")),
        ("/chat/completions", Route(Dialect.OPENAI, "chat.completions")),
        ("/v1/responses", Route(Dialect.OPENAI, "responses")),
        ("/api/v1/chat/completions", Route(Dialect.OPENAI, "chat.completions")),  # OpenRouter
        ("/v1/threads/t1/messages", Route(Dialect.OPENAI, "threads.t1.messages")),
        ("/openai/deployments/gpt4o-prod/chat/completions", Route(Dialect.AZURE, "chat.completions", "gpt4o-prod")),
        ("/openai/deployments/emb/embeddings", Route(Dialect.AZURE, "embeddings", "emb")),
        ("/openai/v1/chat/completions", Route(Dialect.AZURE, "chat.completions")),
        ("/openai/v1/responses", Route(Dialect.AZURE, "responses")),
        ("/v1/messages", Route(Dialect.ANTHROPIC, "messages")),
        ("/v1/messages/count_tokens", Route(Dialect.ANTHROPIC, "messages.count_tokens")),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            Route(Dialect.GEMINI, "generateContent", "gemini-2.0-flash"),
        ),
        ("/v1/models/gemini-pro:streamGenerateContent", Route(Dialect.GEMINI, "streamGenerateContent", "gemini-pro")),
        ("/v1/models", Route(Dialect.OPENAI, "models")),
        ("/", Route(Dialect.OPENAI, "root")),
    ],
)
def test_route_of_names_dialect_endpoint_and_path_model(path: str, route: Route):
    assert route_of(path) == route
    assert endpoint_name(path) == route.endpoint


@pytest.mark.parametrize(
    ("dialect", "client_headers", "header"),
    [
        (Dialect.AZURE, [(b"api-key", b"placeholder")], b"api-key"),
        (Dialect.ANTHROPIC, [(b"x-api-key", b"placeholder")], b"x-api-key"),
        (Dialect.GEMINI, [(b"x-goog-api-key", b"placeholder")], b"x-goog-api-key"),
        (Dialect.OPENAI, [(b"authorization", b"Bearer placeholder")], b"authorization"),
        # The client's scheme wins over its dialect's: a proxy in front of Azure may take Bearer tokens.
        (Dialect.AZURE, [(b"authorization", b"Bearer placeholder")], b"authorization"),
        # No credential header (Gemini's `?key=`, or none at all): the dialect's own scheme.
        (Dialect.GEMINI, [], b"x-goog-api-key"),
        (Dialect.AZURE, [], b"api-key"),
        (Dialect.OPENAI, [(b"content-type", b"application/json")], b"authorization"),
    ],
)
def test_auth_header_follows_the_client_then_the_dialect(dialect, client_headers, header):
    assert auth_header(dialect, client_headers) == header


def test_auth_value_is_bearer_only_for_authorization():
    assert auth_value(b"authorization", "sk-1") == b"Bearer sk-1"
    assert auth_value(b"api-key", "az-1") == b"az-1"




def test_error_documents_take_each_sdks_shape():
    fields = {"error_type": "inference_gate_cache_miss", "code": "cache_miss", "param": None}
    assert error_document(Dialect.OPENAI, 404, "No cassette", **fields) == {
        "error": {"message": "No cassette", "type": "inference_gate_cache_miss", "param": None, "code": "cache_miss"}
    }
    assert error_document(Dialect.AZURE, 404, "No cassette", **fields) == error_document(
        Dialect.OPENAI, 404, "No cassette", **fields
    )
    assert error_document(Dialect.ANTHROPIC, 404, "No cassette", **fields) == {
        "type": "error",
        "error": {"type": "inference_gate_cache_miss", "message": "No cassette"},
    }
    assert error_document(Dialect.GEMINI, 404, "No cassette", **fields) == {
        "error": {"code": 404, "message": "No cassette", "status": "NOT_FOUND"}
    }
    assert error_document(Dialect.GEMINI, 502, "m", **fields)["error"]["status"] == "BAD_GATEWAY"
    assert orjson.loads(orjson.dumps(error_document(Dialect.GEMINI, 504, "m", **fields)))["error"]["status"] == (
        "DEADLINE_EXCEEDED"
    )
