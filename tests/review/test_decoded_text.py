import base64

from inference_gate.review.decoded_text import decoded_runs, joined_stream_fields


def test_a_base64_run_is_decoded_in_either_alphabet_with_or_without_padding():
    text = b"secret: sk-proj-abc?~>\xff and more"
    for encoded in (base64.b64encode(text), base64.urlsafe_b64encode(text), base64.b64encode(text).rstrip(b"=")):
        [run] = [run for run in decoded_runs(b'{"x": "' + encoded + b'"}') if run.how == "base64"]
        assert run.text == text


def test_a_url_encoded_run_is_decoded_and_keeps_where_it_lies():
    source = b"see sk%2Dproj%2Dabc123 here"
    [run] = list(decoded_runs(source))
    assert (run.how, run.text, source[run.start : run.end]) == ("URL-encoded", b"sk-proj-abc123", b"sk%2Dproj%2Dabc123")


def test_short_runs_and_plain_text_decode_to_nothing():
    assert list(decoded_runs(b"Say hello in French, 100% sure")) == []


def test_a_streamed_field_is_joined_across_events_and_takes():
    events = [{"data": {"choices": [{"delta": {"content": piece}}]}} for piece in ("sk-", "proj-", "rest")]
    document = {
        "response": {"events": [*events, {"data": "[DONE]"}]},
        "takes": [{"response": {"events": [{"event": "x", "data": {"delta": "a"}}, {"data": {"delta": "b"}}]}}],
    }
    assert list(joined_stream_fields(document)) == [
        ("response.events[*].data.choices[0].delta.content", "sk-proj-rest"),
        ("takes[0].response.events[*].data.delta", "ab"),
    ]
