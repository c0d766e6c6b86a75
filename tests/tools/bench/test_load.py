"""tools/bench/load.py: wrk's output, read."""

from __future__ import annotations

import pytest

from tools.bench.load import parse_wrk_output

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8080/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms  500.00us  20.00ms   90.00%
    Req/Sec    10.00k   500.00    11.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    3.20ms
     90%    3.50ms
     99%    1.02s
  50000 requests in 5.00s, 100.00MB read
  Non-2xx or 3xx responses: 7
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  10000.50
Transfer/sec:     20.00MB
"""


def test_wrk_output_is_read_with_its_units_and_its_failures() -> None:
    figures = parse_wrk_output(WRK_OUTPUT)
    assert figures.requests_per_s == 10000.5
    assert figures.p50_ms == pytest.approx(0.85)
    assert figures.p99_ms == pytest.approx(1020.0)
    assert figures.failed_count == 10
