"""`.ci/run` tests both ends of the SDKs' supported range: the newest releases, and the lower bounds in
pyproject.toml. The bounds are read by a snippet in the script; a bound spelled so that it misses one SDK would
quietly leave that SDK's lower bound untested."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
CI_RUN = ROOT / ".ci" / "run"


def test_the_newest_sdks_are_installed_explicitly_before_the_tests():
    script = CI_RUN.read_text()
    upgrade = script.index('pip install --quiet --upgrade "openai[realtime]" anthropic httpx2')
    assert upgrade < script.index("python -m pytest\n")


def test_the_lower_bounds_step_pins_every_sdk_at_its_bound_in_pyproject():
    [snippet] = re.findall(r"<<'EOF'\n(.*?)\nEOF\n", CI_RUN.read_text(), flags=re.DOTALL)
    pins = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, check=True)
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    bounds = {requirement.replace(">=", "==") for requirement in dev if requirement.startswith(("openai", "anthropic"))}
    assert set(pins.stdout.split()) == bounds
    assert {pin.split("==")[0].split("[")[0] for pin in bounds} == {"openai", "anthropic"}
