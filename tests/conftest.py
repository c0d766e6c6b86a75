"""Fixtures shared by every test module."""

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home directory and no API key in the environment, so nothing real is read or written."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return home
