"""Starting a proxy child: what of its output is kept, for how long a run may last."""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import time

from proxy_addons.cli import launcher
from proxy_addons.common import control_pipe
from proxy_addons.common.control_pipe import REPLY

CHATTY_CHILD = """
import contextlib
import multiprocessing
import signal
import sys
print("proxy listening on http://127.0.0.1:1")
print("CA certificate: /ca.pem", flush=True)
for i in range(3000):
    print(f"log line {i}", file=sys.stderr)
    print(f"out line {i}")
print("x" * 100_000, file=sys.stderr)
print("last words", file=sys.stderr, flush=True)
sys.stdin.read()
"""


def test_a_long_running_child_keeps_only_its_last_lines_each_of_bounded_length():
    starting = launcher.spawn([sys.executable, "-c", CHATTY_CHILD], tie_stdin=True, keep_lines=50)
    running = starting.ready(timeout=30)
    try:
        deadline = time.monotonic() + 30
        while running.last_lines(1) != ["last words"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.last_lines(1) == ["last words"]
        assert len(running.stderr) == len(running.stdout) == 50
        assert running.stderr[0] == "log line 2952\n"
        assert len(running.stderr[-2]) < launcher.LONGEST_KEPT_LINE + 10
        assert starting.lines.qsize() < 10  # nobody reads start-up lines once it has started
    finally:
        running.stop()


UNENDED_OUTPUT_CHILD = f"""
import contextlib
import multiprocessing
import signal
import sys
print("proxy listening on http://127.0.0.1:1")
print("CA certificate: /ca.pem", flush=True)
sys.stdin.readline()
print("a matcher's debugging, unended", end="")
print({REPLY!r} + '{{"id": 1, "status": 200, "body": "{{}}"}}', flush=True)
sys.stdin.read()
"""


def test_a_reply_after_output_left_unended_still_reaches_the_plugin():
    running = launcher.start(
        [sys.executable, "-c", UNENDED_OUTPUT_CHILD], tie_stdin=True, keep_lines=50, timeout=30
    )
    try:
        assert running.process.stdin is not None
        running.process.stdin.write("go\n")
        running.process.stdin.flush()
        reply = running.replies.get(timeout=30)
        assert reply is not None and control_pipe.parse_reply(reply) == (1, 200, "{}")
        assert running.stdout[-1] == "a matcher's debugging, unended\n"
    finally:
        running.stop()


READS_UNTIL_EOF = (
    "import sys; print('proxy listening on http://127.0.0.1:1'); "
    "print('CA certificate: /ca.pem', flush=True); sys.stdin.read()"
)


def linger() -> None:
    time.sleep(30)


def test_a_tied_child_reads_eof_when_this_process_ends_though_a_fork_of_it_lives_on():
    running = launcher.start([sys.executable, "-c", READS_UNTIL_EOF], tie_stdin=True, timeout=30)
    helper = multiprocessing.get_context("fork").Process(target=linger, daemon=True)
    helper.start()  # as a test's multiprocessing helper would, after the proxy started
    try:
        assert running.process.stdin is not None
        running.process.stdin.close()  # what kill -9 of this process does to its end
        assert running.process.wait(10) == 0
    finally:
        helper.kill()
        helper.join(10)
        running.stop()


UNDECODABLE_OUTPUT_CHILD = f"""
import sys
print("proxy listening on http://127.0.0.1:1")
print("CA certificate: /ca.pem", flush=True)
sys.stdin.readline()
sys.stdout.buffer.write(b"bytes no encoding reads: \\xff\\xfe\\n")
sys.stdout.flush()
print({REPLY!r} + '{{"id": 1, "status": 200, "body": "{{}}"}}', flush=True)
sys.stdin.read()
"""


def test_output_no_encoding_can_read_neither_stops_the_replies_nor_the_log():
    running = launcher.start(
        [sys.executable, "-c", UNDECODABLE_OUTPUT_CHILD], tie_stdin=True, timeout=30
    )
    try:
        assert running.process.stdin is not None
        running.process.stdin.write("go\n")
        running.process.stdin.flush()
        reply = running.replies.get(timeout=30)
        assert reply is not None and control_pipe.parse_reply(reply) == (1, 200, "{}")
        assert running.stdout[-1].startswith("bytes no encoding reads: ")
    finally:
        running.stop()


def test_a_child_that_died_with_a_request_unread_is_stopped_without_an_error():
    running = launcher.start([sys.executable, "-c", READS_UNTIL_EOF], tie_stdin=True, timeout=30)
    running.process.kill()
    running.process.wait(10)
    assert running.process.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # what the plugin's request then meets
        running.process.stdin.write("a request line\n")
        running.process.stdin.flush()
    assert running.stop() == -signal.SIGKILL
