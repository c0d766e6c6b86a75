import re
from dataclasses import field, fields, make_dataclass
from pathlib import Path

import pytest

from inference_gate.config import settings as settings_module
from inference_gate.config.settings import SETTING_SPECS, Settings
from inference_gate.config.sources import DEFAULT_CONFIG_TEMPLATE


def test_every_field_has_exactly_one_declaration_in_field_order():
    assert list(SETTING_SPECS) == [settings_field.name for settings_field in fields(Settings)]
    defaults = Settings()
    for name, spec in SETTING_SPECS.items():
        assert spec.default == getattr(defaults, name)
        assert spec.help.strip()


def test_a_field_without_a_declaration_is_refused(monkeypatch):
    undeclared = make_dataclass("Undeclared", [("port", int, field(default=1))])
    monkeypatch.setattr(settings_module, "Settings", undeclared)
    with pytest.raises(TypeError, match=r"Settings\.port is not declared"):
        settings_module._declared_specs()


def test_list_defaults_are_not_shared_between_instances():
    assert Settings().redact is not Settings().redact


def test_the_template_carries_every_help_text_and_no_secret():
    flat_template = " ".join(line.removeprefix("# ") for line in DEFAULT_CONFIG_TEMPLATE.splitlines())
    for spec in SETTING_SPECS.values():
        assert (spec.help in flat_template) is not spec.secret


def _readme_config_table_keys() -> set[str]:
    """The setting names in the first column of the README's config table (`| key | default | |`)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| key | default | |") :]
    rows = table[: table.index("\n\n")].splitlines()[2:]
    return {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_the_readme_config_table_lists_every_setting_the_config_file_takes_and_no_other():
    in_file = {name for name, spec in SETTING_SPECS.items() if not spec.secret}
    assert _readme_config_table_keys() == in_file
