"""`run_gate` in this process: it owns the main thread and its signals, so each test drives it from another
thread and stops it by signalling this process, as a user's Ctrl-C would."""

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inference_gate.config.settings import Settings
from inference_gate.core.policy import Mode
from inference_gate.serve.foreground import ListenError, run_gate

CLIENT_TIMEOUT_S = 5.0


def serve_while(settings: Settings, mode: Mode, client: Callable[[int], None], signum: int) -> list[int]:
    """Run the gate here; once it listens, call `client(port)` in a thread, then signal this process.

    The signal is sent even if the client fails, so the gate always stops; the client's error is re-raised.
    Returns the ports `on_started` was given.
    """
    ports: list[int] = []
    errors: list[BaseException] = []

    def drive(port: int) -> None:
        try:
            client(port)
        except BaseException as error:
            errors.append(error)
        finally:
            os.kill(os.getpid(), signum)

    def on_started(port: int) -> None:
        ports.append(port)
        threading.Thread(target=drive, args=(port,), daemon=True).start()

    run_gate(settings, mode, on_started=on_started)
    if errors:
        raise errors[0]
    return ports


def send_request(port: int) -> bytes:
    """One request on a raw socket; returns the response head."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S) as client:
        client.sendall(b"GET /v1/models HTTP/1.1\r\nhost: gate\r\nconnection: close\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = client.recv(65536)
            assert chunk, "the gate closed the connection before answering"
            response += chunk
    return response.partition(b"\r\n\r\n")[0]


def all_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_port_zero_reports_the_bound_port_and_a_signal_stops_the_gate(tmp_path, signum):
    heads: list[bytes] = []
    ports = serve_while(
        Settings(port=0, cache_dir=tmp_path),
        Mode.REPLAY,
        lambda port: heads.append(send_request(port)),
        signum,
    )
    assert len(ports) == 1 and ports[0] > 0
    assert heads[0].startswith(b"HTTP/1.1 404 ")
    assert b"\r\nx-inference-gate: miss\r\n" in heads[0]


def test_a_port_in_use_is_a_listen_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as caught:
            run_gate(Settings(port=port, cache_dir=tmp_path), Mode.REPLAY, on_started=pytest.fail)
    assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert isinstance(caught.value.__cause__, OSError)


def test_an_address_of_another_machine_is_a_listen_error(tmp_path):
    settings = Settings(host="192.0.2.1", port=8080, cache_dir=tmp_path)  # TEST-NET-1, never local
    with pytest.raises(
        ListenError, match=r"^cannot listen on 192\.0\.2\.1:8080: cannot assign requested address$"
    ):
        run_gate(settings, Mode.REPLAY, on_started=pytest.fail)


def test_a_second_signal_stops_at_once_and_leaves_no_partial_cassette(tmp_path):
    """A recording whose upstream never answers would hold the first, graceful, stop for the whole grace
    period; the second signal cancels it, and nothing is written."""
    with socket.socket() as silent_upstream:  # accepts connections (the kernel's backlog) and never answers
        silent_upstream.bind(("127.0.0.1", 0))
        silent_upstream.listen()
        upstream = f"http://127.0.0.1:{silent_upstream.getsockname()[1]}"
        settings = Settings(port=0, cache_dir=tmp_path, upstream=upstream, shutdown_grace_s=60.0)

        def start_a_recording_then_signal_once(port: int) -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S) as client:
                body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
                head = (
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: gate\r\ncontent-type: application/json\r\n"
                )
                client.sendall(head + b"content-length: %d\r\n\r\n%s" % (len(body), body))
                time.sleep(0.3)  # the gate forwards it, and waits for the silent upstream
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)  # serve_while then sends the second signal

        started = time.monotonic()
        serve_while(settings, Mode.RECORD, start_a_recording_then_signal_once, signal.SIGTERM)
    assert time.monotonic() - started < 10.0
    assert all_files(tmp_path) == []
