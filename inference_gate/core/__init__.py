"""The sans-IO core: the rules of recording and replaying, as plain functions and dataclasses.

Keys and key rules, the cassette model and its bytes, SSE, summaries, redaction, volatile values, dialects, the
policy and the outcome. Nothing here imports trio or h11, and nothing here imports the layers above it
(tests/test_import_rule.py holds both), so every rule can be tested with plain data.
"""
