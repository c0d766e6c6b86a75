"""tools/make_suite.py: the generated suite holds the tests, calls, streams and distinct requests it reports."""

from __future__ import annotations

import ast
from pathlib import Path

from tools.fake_replies import reply_text
from tools.make_suite import FOLLOW_UP, TESTS_PER_MODULE, is_streamed, prompt, write_suite


def _test_items(module: ast.Module) -> int:
    """A module's test items: a plain test is one, a parametrized one as many as its cases."""
    items = 0
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            [case_list] = [decorator.args[1] for decorator in node.decorator_list] or [ast.List(elts=[None])]
            items += len(case_list.elts)
    return items


def test_a_suite_has_the_tests_asked_for_in_modules_of_twenty(tmp_path: Path) -> None:
    shape = write_suite(tmp_path, 50, 10)
    modules = sorted(tmp_path.glob("test_*.py"))
    items = [_test_items(ast.parse(module.read_text())) for module in modules]
    assert shape.tests == sum(items) == 50
    assert items == [TESTS_PER_MODULE, TESTS_PER_MODULE, 10]
    assert (tmp_path / "conftest.py").exists()
    assert "vcr:" in (tmp_path / "pytest.ini").read_text()


def test_a_suite_makes_one_to_three_calls_a_test_a_third_of_them_streamed(tmp_path: Path) -> None:
    shape = write_suite(tmp_path, 200, 50)
    assert 200 <= shape.calls <= 600
    assert abs(shape.streamed_calls / shape.calls - 1 / 3) < 0.05
    source = "".join(module.read_text() for module in tmp_path.glob("test_*.py"))
    assert source.count("@pytest.mark.parametrize") > 0
    assert source.count("stream=True") >= 1


def test_every_prompt_and_its_follow_up_is_a_distinct_request(tmp_path: Path) -> None:
    shape = write_suite(tmp_path, 200, 50)
    assert shape.prompts == 50
    assert shape.distinct_requests == 100  # each prompt, and once in a parametrized case, its follow-up turn
    share = round(100 * shape.streamed_calls / shape.calls)
    assert shape.text() == f"200 tests, {shape.calls:,} calls ({share}% streamed), 100 distinct requests"


def test_each_call_checks_the_fake_upstreams_answer(tmp_path: Path) -> None:
    write_suite(tmp_path, 4, 4)
    source = (tmp_path / "test_area_000.py").read_text()
    assert repr(reply_text(prompt(0))) in source
    assert repr(reply_text(FOLLOW_UP)) in source
    assert is_streamed(0)
    assert not is_streamed(1)
