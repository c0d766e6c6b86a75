"""`python -m inference_gate` runs the CLI."""

from inference_gate.cli.app import main

if __name__ == "__main__":
    main()
