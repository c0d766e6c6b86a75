"""The layer rule: imports only ever point down the layers, so `ls inference_gate/` is the architecture.

    core      the sans-IO rules           imports the standard library and orjson only
    config    settings and their files    core (and pyyaml)
    store     the cassette directory      core, config
    http      bytes, protocols and limits core
    proxy     the Gate, the one wiring    core, config, store, http
    review    what a reviewer asks        core, config, store
    serve     a gate as a process         core, config, store, http, proxy
    cli, pytest_plugin: the front ends, which may import anything below them; nothing imports a front end.

Each module is imported in a fresh interpreter, because in this one everything is long since loaded; what that
interpreter then holds is the module's whole import closure, so an import that wanders up through another module
is caught as surely as a direct one.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import inference_gate

LAYERS_BELOW = {
    "core": set(),
    "config": {"core"},
    "store": {"core", "config"},
    "http": {"core"},
    "proxy": {"core", "config", "store", "http"},
    "review": {"core", "config", "store"},
    "serve": {"core", "config", "store", "http", "proxy"},
    "cli": {"core", "config", "store", "http", "proxy", "review", "serve"},
    "pytest_plugin": {"core", "config", "store", "http", "proxy", "review", "serve"},
}
# Beyond the standard library and the package itself, what each layer's closure may load.
THIRD_PARTY_ALLOWED = {
    "core": {"orjson"},
    "config": {"orjson", "yaml"},
    "store": {"orjson", "yaml"},
}

# What a Cython-compiled extension (pyyaml's, orjson's) registers of its own when it loads.
CYTHON_RUNTIME = ("_cython_", "cython_runtime")

PROBE = """
import json, sys
before = set(sys.modules)
import {module}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def modules_loaded_by(module: str) -> list[str]:
    """Every module that importing `module` loads, in an interpreter that had loaded none of the package."""
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(completed.stdout)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "inference_gate" else None


def all_package_modules() -> list[str]:
    found = [inference_gate.__name__]
    for info in pkgutil.walk_packages(inference_gate.__path__, prefix="inference_gate."):
        if not info.name.endswith("__main__"):
            found.append(info.name)
    return found


LAYERED = [module for module in all_package_modules() if layer_of(module) in LAYERS_BELOW]


def test_every_module_of_the_package_lives_in_a_layer():
    top_level = {layer_of(module) for module in all_package_modules()} - {None}
    assert top_level == set(LAYERS_BELOW)


@pytest.mark.parametrize("module", LAYERED)
def test_a_module_imports_only_its_own_layer_and_those_below(module):
    layer = layer_of(module)
    loaded = modules_loaded_by(module)
    allowed_layers = LAYERS_BELOW[layer] | {layer}
    wandering = [name for name in loaded if layer_of(name) not in (None, *allowed_layers)]
    assert wandering == [], f"{module} ({layer}) reaches up into {wandering}"
    if layer in THIRD_PARTY_ALLOWED:
        outside = {
            name.split(".")[0]
            for name in loaded
            if name.split(".")[0] not in sys.stdlib_module_names
            and not name.startswith(("inference_gate", *CYTHON_RUNTIME))
        }
        assert outside <= THIRD_PARTY_ALLOWED[layer], f"{module} ({layer}) loads {sorted(outside)}"


def test_the_package_init_loads_nothing_of_the_gate():
    assert [name for name in modules_loaded_by("inference_gate") if name.startswith(("trio", "h11"))] == []


def test_the_probe_sees_an_upward_import():
    loaded = modules_loaded_by("inference_gate.proxy.gate")
    assert {"trio", "h11", "inference_gate.http.server"} <= set(loaded)


# What the pytest plugin must not load at import: pytest imports it in every run of every suite in an environment
# where the package is installed, whether or not the suite uses the gate.
PLUGIN_DEFERRED = (
    "trio",
    "h11",
    "inference_gate.proxy.gate",
    "inference_gate.store.cassette_store",
    "inference_gate.config.settings",
)


def test_the_pytest_plugin_defers_the_gate_the_store_and_the_settings():
    assert [name for name in modules_loaded_by("inference_gate.pytest_plugin") if name in PLUGIN_DEFERRED] == []
