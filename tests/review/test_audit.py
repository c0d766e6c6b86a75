import base64
import os
import shutil
from urllib.parse import quote

import orjson
import pytest

from inference_gate.review.audit import CredentialScanner, audit_store, mask, mask_credentials, watched_values
from tests.cassettes import EXAMPLES, example_name

SOURCE = EXAMPLES / example_name("chat.completions", "say-hello-in-french")
NAME = example_name("chat.completions", "say-hello-in-french")
PROMPT_PATH = "request.body.messages[0].content"


def planted(change) -> bytes:
    """A copy of an example cassette with `change` applied to its parsed document."""
    cassette = orjson.loads(SOURCE.read_bytes())
    change(cassette)
    return orjson.dumps(cassette, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def in_prompt(text: str):
    def change(cassette):
        cassette["request"]["body"]["messages"][0]["content"] = f"Here it is: {text} -- thanks"

    return change


def in_request_header(name: str, value: str):
    def change(cassette):
        cassette["request"]["headers"][name] = value

    return change


def in_query(name: str, value: str):
    def change(cassette):
        cassette["request"]["query"] = [["api-version", "2024-10-21"], [name, value]]

    return change


def in_reply(text: str):
    def change(cassette):
        cassette["response"]["body"]["choices"][0]["message"]["content"] = text

    return change


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

PLANTED = [
    ("openai legacy", in_prompt("sk-" + "aB3dE5fG7h" * 4 + "T3BlbkFJ"), PROMPT_PATH, "OpenAI API key"),
    ("openai project", in_prompt("sk-proj-" + "Zx9_Yw8-Vu7" * 12), PROMPT_PATH, "OpenAI API key"),
    ("openai service account", in_prompt("sk-svcacct-" + "Q1w2E3r4T5" * 6), PROMPT_PATH, "OpenAI API key"),
    ("anthropic", in_prompt("sk-ant-api03-" + "h7Jk9Lm2Np" * 9 + "-AAAA"), PROMPT_PATH, "Anthropic API key"),
    ("google", in_prompt("AIza" + "SyD4f8Hj2Kl6Mn0Pq3Rs5Tu7Vw9Xy1Za2Bc"), PROMPT_PATH, "Google API key"),
    ("aws", in_prompt("AKIAIOSFODNN7EXAMPLE"), PROMPT_PATH, "AWS access key"),
    ("github classic", in_prompt("ghp_" + "a1B2c3D4e5" * 4), PROMPT_PATH, "GitHub token"),
    ("github fine-grained", in_prompt("github_pat_11ABCDEFG0" + "x1Y2z3" * 10), PROMPT_PATH, "GitHub token"),
    ("jwt", in_reply(f"your session: {JWT}"), "response.body.choices[0].message.content", "JWT"),
    ("bearer in text", in_prompt("curl -H 'Bearer abcdefghijklmnop1234'"), PROMPT_PATH, "Bearer token"),
    (
        "authorization",
        in_request_header("authorization", "Basic dXNlcjpwYXNzd29yZA=="),
        "request.headers.authorization",
        "authorization header",
    ),
    (
        "api-key",
        in_request_header("api-key", "0123456789abcdef0123456789abcdef"),
        'request.headers["api-key"]',
        "api-key header",
    ),
    (
        "x-api-key",
        in_request_header("x-api-key", "another-secret-value-42"),
        'request.headers["x-api-key"]',
        "x-api-key header",
    ),
    ("cookie", in_request_header("cookie", "session=abcdef0123456789"), "request.headers.cookie", "cookie header"),
    ("header line in text", in_prompt("X-Api-Key: abcd1234efgh5678"), PROMPT_PATH, "x-api-key header"),
    (
        "query pair",
        in_query("key", "AIzaNotQuiteLongEnough123"),
        "request.query[1][1]",
        "credential query parameter 'key'",
    ),
    (
        "url parameter",
        in_reply("see https://example.invalid/x?sig=Zm9vYmFyYmF6cXV4&sv=1"),
        "response.body.choices[0].message.content",
        "credential query parameter 'sig'",
    ),
]


@pytest.mark.parametrize(("change", "path", "kind"), [case[1:] for case in PLANTED], ids=[case[0] for case in PLANTED])
def test_each_kind_of_credential_is_found_with_its_path(change, path, kind):
    findings, allowed = CredentialScanner().scan(NAME, planted(change))
    assert [(finding.path, finding.kind) for finding in findings] == [(path, kind)]
    assert allowed == 0
    [finding] = findings
    assert finding.value not in finding.masked
    assert finding.masked.endswith(f"({len(finding.value)} chars)")


def test_the_example_cassettes_are_clean(tmp_path):
    report = audit_store(EXAMPLES, CredentialScanner())
    assert report.scanned == 6
    assert report.findings == ()


@pytest.mark.parametrize(
    "text",
    [
        "use sk-learn for this, and sk-12345 is a ticket",
        "the sk-my-notes-about-the-rollout-of-things slug",
        "a masked key sk-abc12*********************3210",
        "the Authorization: header is needed, Bearer of bad news",
        "AKIA is a prefix, token=short",
    ],
)
def test_words_that_only_look_like_credentials_are_not_flagged(text):
    long_prompt = ("All work and no play makes Jack a dull boy. " * 200) + text
    assert CredentialScanner().scan(NAME, planted(in_prompt(long_prompt))) == ([], 0)


def test_redacted_values_are_not_flagged():
    data = planted(in_request_header("authorization", "<redacted>"))
    assert CredentialScanner().scan(NAME, data) == ([], 0)


def test_watched_environment_values_are_found_literally():
    secret = "azure-" + "9f8e7d6c5b4a" * 3
    values = watched_values({"AZURE_OPENAI_API_KEY": secret, "SHORT": "tiny", "MINE": "m" * 40}, ["MINE", "SHORT"])
    assert values == {"AZURE_OPENAI_API_KEY": secret, "MINE": "m" * 40}
    findings, _ = CredentialScanner(values).scan(NAME, planted(in_reply(f"key {secret} end")))
    assert [(finding.kind, finding.path) for finding in findings] == [
        ("value of $AZURE_OPENAI_API_KEY", "response.body.choices[0].message.content")
    ]


def test_the_allow_list_takes_values_and_locations():
    key = "sk-" + "aB3dE5fG7h" * 4
    data = planted(in_prompt(key))
    for entry in (key, NAME, "chat.completions/*", f"{NAME}:request.body.*"):
        assert CredentialScanner(allow=[entry]).scan(NAME, data) == ([], 1), entry
    assert len(CredentialScanner(allow=[f"{NAME}:response.*"]).scan(NAME, data)[0]) == 1


def test_a_file_that_is_not_json_is_still_scanned():
    findings, _ = CredentialScanner().scan("x/y.json", b'{"torn": "sk-' + b"aB3dE5fG7h" * 4)
    assert [(finding.path, finding.kind) for finding in findings] == [("?", "OpenAI API key")]


def test_repeated_values_get_each_path():
    key = "ghp_" + "a1B2c3D4e5" * 4

    def twice(cassette):
        in_prompt(key)(cassette)
        in_reply(f"you said {key}")(cassette)

    findings, _ = CredentialScanner().scan(NAME, planted(twice))
    assert [finding.path for finding in findings] == [PROMPT_PATH, "response.body.choices[0].message.content"]


@pytest.mark.parametrize(
    ("value", "masked"),
    [("sk-proj-abcdefghijklmnopqrstuvwxyz0123", "sk-pro…0123 (38 chars)"), ("abcdefgh", "ab…h (8 chars)")],
)
def test_mask_never_shows_the_whole_value(value, masked):
    assert mask(value) == masked


PROJECT_KEY = "sk-proj-" + "Zx9_Yw8-Vu7" * 4
GOOGLE_KEY = "AIza" + "SyD4f8Hj2Kl6Mn0Pq3Rs5Tu7Vw9Xy1Za2Bc"
STREAM = EXAMPLES / example_name("chat.completions", "write-a-haiku-about-caching")


def in_body_base64(text: str):
    def change(cassette):
        del cassette["response"]["body"]
        cassette["response"]["body_base64"] = base64.b64encode(b"\xff\xfe binary " + text.encode()).decode()

    return change


def split_across_events(text: str, cut: int):
    """The streamed reply's first two content deltas carry `text` cut at `cut`."""

    def change(cassette):
        deltas = [
            choice["delta"]
            for event in cassette["response"]["events"]
            if isinstance(event.get("data"), dict)
            for choice in event["data"]["choices"][:1]
            if "content" in choice["delta"]
        ]
        deltas[0]["content"], deltas[1]["content"] = text[:cut], text[cut:]

    return change


def planted_in(source, change) -> bytes:
    cassette = orjson.loads(source.read_bytes())
    change(cassette)
    return orjson.dumps(cassette, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


ENCODED = [
    ("gate's body_base64", planted(in_body_base64(PROJECT_KEY)), "response.body_base64", "OpenAI API key (base64)"),
    (
        "base64 in a body string",
        planted(in_prompt("payload " + base64.b64encode(f"token {PROJECT_KEY}".encode()).decode())),
        PROMPT_PATH,
        "OpenAI API key (base64)",
    ),
    (
        "URL-encoded key",
        planted(in_prompt(quote(PROJECT_KEY, safe="").replace("-", "%2D"))),
        PROMPT_PATH,
        "OpenAI API key (URL-encoded)",
    ),
    (
        "key parameter in an encoded URL",
        planted(in_prompt("open " + quote(f"https://example.invalid/v1?key={GOOGLE_KEY}", safe=""))),
        PROMPT_PATH,
        "credential query parameter 'key' (URL-encoded)",
    ),
    (
        "split inside the prefix",
        planted_in(STREAM, split_across_events(f"here: {PROJECT_KEY} done", len("here: sk-"))),
        "response.events[*].data.choices[0].delta.content",
        "OpenAI API key (split across stream events)",
    ),
]


@pytest.mark.parametrize(("data", "path", "kind"), [case[1:] for case in ENCODED], ids=[case[0] for case in ENCODED])
def test_encoded_and_split_credentials_are_found(data, path, kind):
    findings, _ = CredentialScanner().scan(NAME, data)
    assert [(finding.path, finding.kind) for finding in findings] == [(path, kind)]
    assert findings[0].value in (PROJECT_KEY, GOOGLE_KEY)


def test_a_key_found_whole_is_not_reported_again_from_a_decoded_view():
    whole_in_one_event = planted_in(STREAM, split_across_events(f"{PROJECT_KEY} and more", len(PROJECT_KEY) + 1))
    findings, _ = CredentialScanner().scan(NAME, whole_in_one_event)
    assert [finding.kind for finding in findings] == ["OpenAI API key"]


def test_every_file_in_the_directory_is_audited_and_the_summary_counts_files(tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "cache")
    (tmp_path / "cache" / "notes.txt").write_text(f"remember {PROJECT_KEY}\n")
    (tmp_path / "cache" / "chat.completions" / "hand-copied.json").write_bytes(planted(in_prompt(GOOGLE_KEY)))
    report = audit_store(tmp_path / "cache", CredentialScanner())
    assert report.scanned == 8
    assert sorted(finding.name for finding in report.findings) == ["chat.completions/hand-copied.json", "notes.txt"]
    assert report.files_with_findings == 2


def test_a_fifo_in_the_directory_is_reported_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    report = audit_store(tmp_path, CredentialScanner())
    assert [(finding.name, finding.kind) for finding in report.findings] == [
        ("pipe.json", "not a regular file (not audited)")
    ]


@pytest.mark.parametrize(
    "text",
    [
        f"my key is {PROJECT_KEY}, use it",
        f"encoded {quote(PROJECT_KEY, safe='').replace('-', '%2D')} here",
        f"b64 {base64.b64encode(PROJECT_KEY.encode()).decode()} here",
    ],
)
def test_mask_credentials_hides_plain_and_encoded_keys_and_keeps_the_rest(text):
    masked = mask_credentials(text)
    assert "Zx9_Yw8" not in masked
    assert "sk-pro…" in masked
    assert masked.endswith(" here") or masked.endswith(", use it")


def test_mask_credentials_leaves_ordinary_text_alone():
    text = "Echo: Say hello in French — héllo wörld 你好 🌍 (sk-learn, sk-12345)"
    assert mask_credentials(text) == text


def test_a_key_split_across_a_sessions_server_frames_is_found():
    from inference_gate.core.session_cassette import session_to_bytes
    from tests.sessions import realtime_session

    key = "sk-proj-" + "aB3dE5fG7h" * 4
    data = session_to_bytes(realtime_session(reply=(key[:10], key[10:])))
    findings, _ = CredentialScanner().scan("realtime/x.json", data)
    assert [finding.value for finding in findings] == [key]


def test_a_sessions_frames_are_joined_per_side_for_the_audit():
    from inference_gate.core.session_cassette import session_to_bytes
    from inference_gate.review.decoded_text import joined_stream_fields
    from tests.sessions import realtime_session

    document = orjson.loads(session_to_bytes(realtime_session(reply=("sk-pr", "oj-x"))))
    assert ("frames[server].data.delta", "sk-proj-x") in list(joined_stream_fields(document))
