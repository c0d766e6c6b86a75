"""Settings: every knob, declared once, and the files and options they are read from."""
