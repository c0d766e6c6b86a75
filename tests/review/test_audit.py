
import orjson
import pytest

from inference_gate.review.audit import CredentialScanner, audit_store, mask, watched_values
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
