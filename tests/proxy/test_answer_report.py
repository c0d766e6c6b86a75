"""Reporting an answer: the log line and on_answer read one Answer, and nobody listening builds none."""

import logging

from inference_gate.core.http_models import HttpRequest
from inference_gate.core.outcome import TEST_HEADER, Answer, Outcome
from inference_gate.proxy.answer_report import AnswerReport, Verdict, log_subject

REQUEST = HttpRequest("POST", "/v1/chat/completions?x=1", [(TEST_HEADER, b"tests/test_a.py::test_b")])


def test_on_answer_gets_the_verdict_with_the_request_and_its_test(caplog):
    answers: list[Answer] = []
    report = AnswerReport(answers.append)
    with caplog.at_level(logging.INFO, logger="inference_gate"):
        report(REQUEST, 0.0, 200, Verdict(Outcome.HIT, "chat.completions/a.json"))
    [answer] = answers
    assert (answer.method, answer.path, answer.status) == ("POST", "/v1/chat/completions", 200)
    assert answer.outcome is Outcome.HIT
    assert answer.cassette == "chat.completions/a.json" and answer.test_id == "tests/test_a.py::test_b"
    assert "POST /v1/chat/completions hit 200" in caplog.text
    assert caplog.text.rstrip().endswith("chat.completions/a.json")


def test_a_miss_is_logged_with_the_cassette_that_would_have_answered(caplog):
    with caplog.at_level(logging.INFO, logger="inference_gate"):
        AnswerReport(None)(REQUEST, 0.0, 404, Verdict(Outcome.MISS, None, "cache_miss"), slot="chat.completions/b.json")
    assert caplog.text.rstrip().endswith("chat.completions/b.json")


def test_the_log_subject_names_the_cassette_and_why_for_an_error_or_a_refresh():
    error = Answer("POST", "/p", 500, Outcome.ERROR, cassette="c.json", reason="corrupt")
    refreshed = Answer("POST", "/p", 200, Outcome.RECORDED, cassette="c.json", reason="unchanged")
    assert log_subject(error, "") == "c.json corrupt"
    assert log_subject(refreshed, "") == "c.json unchanged"
    assert log_subject(Answer("POST", "/p", 400, Outcome.ERROR, reason="invalid_json"), "") == "invalid_json"


def test_nobody_listening_builds_no_answer(monkeypatch, caplog):
    built = []
    monkeypatch.setattr("inference_gate.proxy.answer_report.Answer", lambda *a, **k: built.append(a))
    with caplog.at_level(logging.WARNING, logger="inference_gate"):
        AnswerReport(None)(REQUEST, 0.0, 200, Verdict(Outcome.HIT, "a.json"))
    assert built == []
