"""Setting parsers: a value as YAML gives it and as the command line gives it (a string) reads the same, and a bad
one says what was expected."""

from pathlib import Path

import pytest

from inference_gate.config import parsers as parse


@pytest.mark.parametrize(
    ("parser", "given", "expected"),
    [
        (parse.port, 8080, 8080),
        (parse.port, "0", 0),
        (parse.take_count, "3", 3),
        (parse.size_bytes, 1024, 1024),
        (parse.positive_int, "7", 7),
        (parse.integer, "-2", -2),
        (parse.fraction, "0.25", 0.25),
        (parse.fraction, 1, 1.0),
        (parse.duration_s, "1.5", 1.5),
        (parse.replay_speed, None, None),
        (parse.replay_speed, "2", 2.0),
        (parse.replay_spread, "even", "even"),
        (parse.boolean, True, True),
        (parse.text, "hello", "hello"),
        (parse.upstream_url, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
        (parse.text_list, ["A", "B"], ["A", "B"]),
        (parse.redact_rules, ["headers.x-org", "body.messages[*]"], ["headers.x-org", "body.messages[*]"]),
        (parse.ignore_rules, ["body.metadata"], ["body.metadata"]),
    ],
)
def test_a_good_value_reads_as_its_type(parser, given, expected):
    assert parser(given) == expected


@pytest.mark.parametrize(
    ("parser", "given", "says"),
    [
        (parse.port, 70000, "0 to 65535"),
        (parse.port, True, "0 to 65535"),
        (parse.take_count, 0, "positive integer"),
        (parse.size_bytes, "-1", "number of bytes"),
        (parse.fraction, "1.5", "from 0 to 1"),
        (parse.fraction, "nan", "from 0 to 1"),
        (parse.duration_s, "inf", "positive number of seconds"),
        (parse.replay_speed, 0, "or null for no pacing"),
        (parse.replay_spread, "sideways", "even"),
        (parse.boolean, "yes", "true or false"),
        (parse.text, "  ", "non-empty string"),
        (parse.upstream_url, "https://u:p@example.com", "no credentials"),
        (parse.text_list, ["ok", ""], "non-empty strings"),
        (parse.redact_rules, ["cookies.x"], "'headers.<name>'"),
        (parse.redact_rules, "headers.x", "'headers.<name>'"),
        (parse.ignore_rules, ["nonsense"], "valid key rules"),
        (parse.normalize_rules, [{"path": "body.x", "pattern": "(", "replace": ""}], "valid key rules"),
    ],
)
def test_a_bad_value_is_refused_saying_what_was_expected(parser, given, says):
    with pytest.raises(parse.InvalidValue) as raised:
        parser(given)
    assert says in raised.value.expected


def test_a_directory_expands_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse.directory("~/cassettes") == tmp_path / "cassettes"
    assert parse.directory(Path("~")) == tmp_path
