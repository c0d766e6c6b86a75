"""A generated pytest suite of the kind users run: thousands of tests calling the official openai SDK, for the
bench's suite row (tools/bench/suite.py).

    python -m tools.make_suite DIR --tests 2000 --prompts 500

DIR gets a `pytest.ini`, a `conftest.py` and test modules of `TESTS_PER_MODULE` tests each. Every test makes one
to three `chat.completions.create` calls on a session-wide `client` and checks each answer's text against what
tools/fake_upstream.py answers; a prompt's index decides whether its calls stream (a third of them do), and
every fourth test function is parametrized over four prompts. Calls cycle through `prompts` distinct prompts, so tests
share answers the way a real suite's do. Every module is marked `vcr`, for vcrpy (pytest-recording) and
cassetter; the other ways leave the mark alone.

`SUITE_WAY` in the environment says which way the suite runs, the conftest building the client to match:
- `floor`: the SDK on an in-memory transport of its own HTTP client returning canned bytes, no mocking library.
  With `SUITE_RECORD=1` the transport forwards to `SUITE_UPSTREAM` and keeps each answer in `floor-answers.json`;
  without, it answers from that file.
- `gate`: `OpenAI()` with no arguments, which the pytest plugin points at its gate (`--inference-gate=...`).
- `vcrpy` and `cassetter`: the SDK aimed at `SUITE_UPSTREAM`, the library answering (`--record-mode=...`).

The suite imports nothing from this repository, as it runs in the bench's own virtualenv.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from tools.fake_replies import reply_text

TESTS_PER_MODULE = 20
PARAMETRIZED_EVERY = 4  # every fourth test of a module is parametrized...
PARAMETRIZED_CASES = 4  # ...over this many prompts
STREAMED_EVERY = 3  # prompts whose index is a multiple of this stream
MODEL = "gpt-4o-mini"
FOLLOW_UP = "Say that again, more briefly."

PYTEST_INI = """\
[pytest]
markers =
    vcr: recorded with vcrpy (pytest-recording) or cassetter
"""

CONFTEST = '''\
"""The client each way of running this generated suite uses; see tools/make_suite.py in InferenceGate."""

import base64
import json
import os
from pathlib import Path

import openai
import openai._base_client
import pytest

WAY = os.environ.get("SUITE_WAY", "gate")
UPSTREAM = os.environ.get("SUITE_UPSTREAM", "http://127.0.0.1:9/v1")  # at replay time nothing listens there
API_KEY = "sk-suite-0123456789abcdefWXYZ"
FLOOR_ANSWERS = Path(__file__).parent / "floor-answers.json"
# The HTTP client the SDK itself uses: httpx2 in openai 3, httpx before.
httpx = getattr(openai._base_client, "httpx2", None) or openai._base_client.httpx


class CannedTransport(httpx.BaseTransport):
    """Answers each request with the recorded bytes of the answer to the same body: the floor."""

    def __init__(self, answers):
        self._answers = answers

    def handle_request(self, request):
        status, headers, body = self._answers[request.read()]
        return httpx.Response(status, headers=headers, content=body)


class RecordingTransport(httpx.BaseTransport):
    """Forwards to the upstream and keeps each answer, to be the floor's canned bytes."""

    def __init__(self):
        self._transport = httpx.HTTPTransport()
        self.answers = {}

    def handle_request(self, request):
        response = self._transport.handle_request(request)
        body = response.read()
        headers = [(name, value) for name, value in response.headers.items() if name not in FRAMING]
        self.answers[request.read()] = (response.status_code, headers, body)
        return httpx.Response(response.status_code, headers=headers, content=body)


FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection"}


def floor_client():
    if os.environ.get("SUITE_RECORD"):
        return RecordingTransport()
    stored = json.loads(FLOOR_ANSWERS.read_text())
    answers = {
        base64.b64decode(request): (status, headers, base64.b64decode(body))
        for request, status, headers, body in stored
    }
    return CannedTransport(answers)


@pytest.fixture(scope="session")
def client():
    if WAY == "gate":
        yield openai.OpenAI(max_retries=0)
        return
    if WAY != "floor":
        yield openai.OpenAI(api_key=API_KEY, base_url=UPSTREAM, max_retries=0)
        return
    transport = floor_client()
    yield openai.OpenAI(
        api_key=API_KEY, base_url=UPSTREAM, max_retries=0, http_client=httpx.Client(transport=transport)
    )
    if isinstance(transport, RecordingTransport):
        stored = [
            [base64.b64encode(request).decode(), status, headers, base64.b64encode(body).decode()]
            for request, (status, headers, body) in transport.answers.items()
        ]
        FLOOR_ANSWERS.write_text(json.dumps(stored))


@pytest.fixture(scope="module")
def vcr_config():
    return {"filter_headers": ["authorization"]}
'''


@dataclass(frozen=True, slots=True)
class SuiteShape:
    """What a generated suite holds: its test items, the SDK calls they make, how many of those stream, the
    prompts they cycle through, and the distinct requests among the calls (one cassette each for the gate)."""

    tests: int
    calls: int
    streamed_calls: int
    prompts: int
    distinct_requests: int

    def text(self) -> str:
        share = self.streamed_calls / self.calls if self.calls else 0.0
        return (
            f"{self.tests:,} tests, {self.calls:,} calls ({share:.0%} streamed), "
            f"{self.distinct_requests:,} distinct requests"
        )


def write_suite(directory: Path, test_count: int, prompt_count: int) -> SuiteShape:
    """Write a suite of `test_count` test items whose calls cycle through `prompt_count` prompts."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(PYTEST_INI)
    (directory / "conftest.py").write_text(CONFTEST)
    prompts = _PromptCycle(prompt_count)
    written = 0
    module_index = 0
    functions = 0  # test functions written, a parametrized one counting once
    while written < test_count:
        sources = ["import pytest", "pytestmark = pytest.mark.vcr", ASK_HELPER]
        module_tests = 0
        while module_tests < TESTS_PER_MODULE and written + module_tests < test_count:
            number = written + module_tests
            functions += 1
            if functions % PARAMETRIZED_EVERY == 0:
                cases = min(PARAMETRIZED_CASES, test_count - number, TESTS_PER_MODULE - module_tests)
                sources.append(_parametrized_test(number, [prompts.next(follow_up=True) for _ in range(cases)]))
                module_tests += cases
            else:
                calls = 1 + functions % 3
                sources.append(_plain_test(number, [prompts.next() for _ in range(calls)]))
                module_tests += 1
        module_text = "\n\n\n".join(source.rstrip("\n") for source in sources)
        (directory / f"test_area_{module_index:03d}.py").write_text(module_text + "\n")
        written += module_tests
        module_index += 1
    return SuiteShape(written, prompts.calls, prompts.streamed_calls, prompt_count, len(prompts.requests))


class _PromptCycle:
    """Prompt indices in turn, counting the calls made with them and the distinct requests among those."""

    def __init__(self, prompt_count: int) -> None:
        self._prompt_count = prompt_count
        self.calls_without_follow_ups = 0
        self.calls = 0
        self.streamed_calls = 0
        self.requests: set[tuple[int, bool]] = set()  # (prompt, whether the follow-up turn)

    def next(self, *, follow_up: bool = False) -> int:
        """The next prompt's index; with `follow_up`, its call is followed by a second turn, in the same way."""
        index = self.calls_without_follow_ups % self._prompt_count
        self.calls_without_follow_ups += 1
        turns = 2 if follow_up else 1
        self.calls += turns
        self.streamed_calls += turns * is_streamed(index)
        self.requests.add((index, False))
        if follow_up:
            self.requests.add((index, True))
        return index


def is_streamed(prompt_index: int) -> bool:
    return prompt_index % STREAMED_EVERY == 0


def prompt(index: int) -> str:
    return f"Question {index}: what does entry {index} of the catalogue say about caching answers?"


def _call_lines(index: int, indent: str) -> list[str]:
    messages = f'[{{"role": "user", "content": {prompt(index)!r}}}]'
    expected = reply_text(prompt(index))
    if is_streamed(index):
        return [
            f'{indent}stream = client.chat.completions.create(model="{MODEL}", messages={messages}, stream=True)',
            f'{indent}text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)',
            f"{indent}assert text == {expected!r}",
        ]
    return [
        f'{indent}answer = client.chat.completions.create(model="{MODEL}", messages={messages})',
        f"{indent}assert answer.choices[0].message.content == {expected!r}",
    ]


def _plain_test(number: int, prompt_indices: list[int]) -> str:
    lines = [f"def test_answer_{number}(client):"]
    for index in prompt_indices:
        lines += _call_lines(index, "    ")
    return "\n".join(lines) + "\n"


def _parametrized_test(number: int, prompt_indices: list[int]) -> str:
    """A test over several prompts, each case a two-turn conversation: the prompt, then `FOLLOW_UP` after the
    answer, both streamed when the prompt's calls are."""
    cases = ", ".join(repr((prompt(index), reply_text(prompt(index)), is_streamed(index))) for index in prompt_indices)
    ids = ", ".join(repr(f"prompt{index}") for index in prompt_indices)
    follow_up = {"role": "user", "content": FOLLOW_UP}
    return "\n".join(
        [
            f'@pytest.mark.parametrize(("prompt", "expected", "stream"), [{cases}], ids=[{ids}])',
            f"def test_topic_{number}(client, prompt, expected, stream):",
            '    messages = [{"role": "user", "content": prompt}]',
            "    assert _ask(client, messages, stream) == expected",
            f"    messages += [{{'role': 'assistant', 'content': expected}}, {follow_up}]",
            f"    assert _ask(client, messages, stream) == {reply_text(FOLLOW_UP)!r}",
            "",
        ]
    )


ASK_HELPER = f'''def _ask(client, messages, stream):
    if stream:
        chunks = client.chat.completions.create(model="{MODEL}", messages=messages, stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    answer = client.chat.completions.create(model="{MODEL}", messages=messages)
    return answer.choices[0].message.content
'''


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a generated pytest suite of openai SDK calls.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--prompts", type=int, default=500)
    arguments = parser.parse_args()
    print(write_suite(arguments.directory, arguments.tests, arguments.prompts).text())


if __name__ == "__main__":
    main()
