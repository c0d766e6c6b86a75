"""`python -m tools.bench`: see tools/bench/__init__.py."""

from tools.bench.runner import main

main()
