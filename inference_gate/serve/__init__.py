"""A gate as a running process: in the foreground until Ctrl-C, and the test prompt sent through it."""
