"""tools/bench/websocket.py: the 50-frame session it plays, and the text it checks aimock against."""

from __future__ import annotations

import orjson

from tools.bench.websocket import SESSION_FRAMES, answer_text, prompt_for_frames, session_script
from tools.fake_responses_socket import ResponsesSocketSession


def test_the_session_has_the_frames_it_is_named_for():
    script = session_script(prompt_for_frames(SESSION_FRAMES))
    (turn,) = script.turns
    answer = ResponsesSocketSession().receive(turn.client).events
    assert 1 + len(answer) == SESSION_FRAMES
    assert answer[-1]["type"] == turn.ends_with == "response.completed"


def test_the_answer_text_is_the_deltas_joined():
    events = ResponsesSocketSession().receive(session_script("Say hi").turns[0].client).events
    messages = [orjson.dumps(event).decode() for event in events]
    (done,) = [event for event in events if event["type"] == "response.output_text.done"]
    assert answer_text(messages) == done["text"]
