import copy

import orjson

from inference_gate.review.changes import ABSENT, FieldChange, diff_cassettes
from tests.cassettes import EXAMPLES, example_name

FRENCH = example_name("chat.completions", "say-hello-in-french")
WEATHER = example_name("chat.completions", "what-is-the-weather-in-paris")
HAIKU = example_name("chat.completions", "write-a-haiku-about-caching")
JOKE = example_name("responses", "tell-me-a-one-line-joke-about-http")


def document(name: str) -> dict:
    return orjson.loads((EXAMPLES / name).read_bytes())


def encoded(value: dict) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def edited(name: str, change) -> bytes:
    value = copy.deepcopy(document(name))
    change(value)
    return encoded(value)


def test_identical_files_are_no_change():
    files = {name: (EXAMPLES / name).read_bytes() for name in (FRENCH, HAIKU)}
    changes = diff_cassettes(files, dict(files))
    assert not changes.has_changes and changes.volatile_only == ()


def test_added_and_removed_name_endpoint_model_and_prompt():
    changes = diff_cassettes({FRENCH: (EXAMPLES / FRENCH).read_bytes()}, {JOKE: (EXAMPLES / JOKE).read_bytes()})
    [removed], [added] = changes.removed, changes.added
    assert (removed.name, removed.endpoint, removed.model, removed.prompt) == (
        FRENCH,
        "chat.completions",
        "gpt-4o-mini",
        "Say hello in French",
    )
    assert (added.endpoint, added.prompt) == ("responses", "Tell me a one-line joke about HTTP")
    assert changes.prompt_changed == ()  # different endpoints never pair


def test_a_changed_reply_names_text_finish_reason_usage_and_model():
    def change(value):
        choice = value["response"]["body"]["choices"][0]
        choice["message"]["content"] = "Salut !"
        choice["finish_reason"] = "length"
        value["response"]["body"]["usage"]["completion_tokens"] = 2
        value["response"]["body"]["model"] = "gpt-4o-mini-2030"
        value["response"]["body"]["id"] = "chatcmpl-other"  # volatile: not reported

    old = document(FRENCH)
    changes = diff_cassettes({FRENCH: encoded(old)}, {FRENCH: edited(FRENCH, change)})
    [changed] = changes.changed
    body = old["response"]["body"]
    assert changed.changes == (
        FieldChange("reply", body["choices"][0]["message"]["content"], "Salut !"),
        FieldChange("finish reason", "stop", "length"),
        FieldChange("model", "gpt-4o-mini", "gpt-4o-mini-2030"),
        FieldChange("usage.completion_tokens", body["usage"]["completion_tokens"], 2),
    )


def test_tool_calls_and_headers():
    def change(value):
        value["response"]["body"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"city":"Rome"}'
        value["response"]["headers"]["openai-version"] = "2030-01-01"

    [changed] = diff_cassettes({WEATHER: encoded(document(WEATHER))}, {WEATHER: edited(WEATHER, change)}).changed
    assert changed.changes == (
        FieldChange("tool calls", ['get_weather({"city":"Paris"})'], ['get_weather({"city":"Rome"})']),
        FieldChange('response.headers["openai-version"]', "2020-10-01", "2030-01-01"),
    )


def test_a_body_change_no_named_field_shows_is_listed_by_path():
    def change(value):
        value["response"]["body"]["service_tier"] = "flex"

    [changed] = diff_cassettes({FRENCH: encoded(document(FRENCH))}, {FRENCH: edited(FRENCH, change)}).changed
    assert changed.changes == (FieldChange("response.body.service_tier", "default", "flex"),)


def test_only_volatile_values_changed():
    def change(value):
        value["recorded_at"] = "2031-01-01T00:00:00Z"
        value["response"]["timing"] = {"first_event_ms": 90, "last_event_ms": 4000}
        for event in value["response"]["events"]:
            if isinstance(event["data"], dict):
                event["data"]["id"] = "chatcmpl-new"

    changes = diff_cassettes({HAIKU: encoded(document(HAIKU))}, {HAIKU: edited(HAIKU, change)})
    assert not changes.has_changes and changes.volatile_only == (HAIKU,)


def test_an_edited_prompt_pairs_with_the_cassette_it_was_edited_from():
    old_haiku, old_french = document(HAIKU), document(FRENCH)
    new_haiku = copy.deepcopy(old_haiku)
    new_haiku["request"]["body"]["messages"][1]["content"] = "Write a haiku about caching layers"
    new_other = copy.deepcopy(old_french)
    new_other["request"]["body"]["messages"][-1]["content"] = "Something else entirely, unrelated"
    changes = diff_cassettes(
        {HAIKU: encoded(old_haiku), FRENCH: encoded(old_french)},
        {"chat.completions/new-haiku.json": encoded(new_haiku), "chat.completions/new-other.json": encoded(new_other)},
    )
    [pair] = changes.prompt_changed
    assert (pair.removed.name, pair.added.name) == (HAIKU, "chat.completions/new-haiku.json")
    assert pair.differences == (
        FieldChange(
            "request.body.messages[1].content", "Write a haiku about caching", "Write a haiku about caching layers"
        ),
    )
    assert pair.reply_changes == ()
    # "Say hello in French" -> "Something else entirely" keeps too little of the text to be an edit.
    assert [listed.name for listed in changes.removed] == [FRENCH]
    assert [listed.name for listed in changes.added] == ["chat.completions/new-other.json"]


def test_a_request_that_gained_a_setting_pairs_and_shows_the_absent_side():
    old = document(FRENCH)
    new = copy.deepcopy(old)
    new["request"]["body"]["seed"] = 7
    changes = diff_cassettes({FRENCH: encoded(old)}, {"chat.completions/warmer.json": encoded(new)})
    [pair] = changes.prompt_changed
    assert pair.differences == (FieldChange("request.body.seed", ABSENT, 7),)


def test_an_unreadable_file_is_reported_not_skipped():
    changes = diff_cassettes({FRENCH: (EXAMPLES / FRENCH).read_bytes()}, {FRENCH: b'{"torn'})
    [changed] = changes.changed
    [change] = changed.changes
    assert (change.field, change.old) == ("cassette", "readable")
    assert change.new.startswith("unreadable: not valid JSON")
    [added] = diff_cassettes({}, {"x/y.json": b"[]"}).added
    assert added.prompt == "unreadable: not a JSON object"


def with_takes(name: str, *replies: str) -> bytes:
    """The example cassette as a cassette of several takes, one per reply text."""
    value = document(name)
    response = value.pop("response")
    takes = []
    for number, reply in enumerate(replies):
        take_response = copy.deepcopy(response)
        take_response["body"]["choices"][0]["message"]["content"] = reply
        takes.append({"recorded_at": f"2026-01-01T00:00:0{number}Z", "response": take_response})
    value.pop("recorded_at")
    return encoded({**value, "takes": takes})


def test_a_take_added_or_changed_is_named_by_its_number():
    old = with_takes(FRENCH, "Bonjour !", "Salut !")
    [added] = diff_cassettes({FRENCH: old}, {FRENCH: with_takes(FRENCH, "Bonjour !", "Salut !", "Coucou !")}).changed
    assert added.changes == (FieldChange("takes", 2, 3),)
    [edited_take] = diff_cassettes({FRENCH: old}, {FRENCH: with_takes(FRENCH, "Bonjour !", "Allô !")}).changed
    assert edited_take.changes == (FieldChange("take 2 reply", "Salut !", "Allô !"),)
    [grown] = diff_cassettes({FRENCH: (EXAMPLES / FRENCH).read_bytes()}, {FRENCH: old}).changed
    assert FieldChange("takes", 1, 2) in grown.changes
