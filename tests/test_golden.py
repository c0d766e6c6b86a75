import pytest

from tests.golden import UPDATE_VARIABLE, updating_golden_files


@pytest.mark.parametrize(("value", "updating"), [("1", True), ("0", False), ("", False), ("true", False)])
def test_only_one_by_hand_rewrites_golden_files(monkeypatch, value, updating):
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    monkeypatch.setenv(UPDATE_VARIABLE, value)
    assert updating_golden_files() is updating


def test_the_old_variable_name_rewrites_nothing(monkeypatch):
    monkeypatch.delenv(UPDATE_VARIABLE, raising=False)
    monkeypatch.setenv("UPDATE_GOLDEN", "1")
    assert not updating_golden_files()
