from __future__ import annotations

import time

import pytest

from jobs.media import proc
from jobs.media.errors import MediaError, ProcessError, ProcessTimeout


def test_it_returns_stdout_of_a_successful_program() -> None:
    result = proc.run("sh", ["-c", "printf hello"], timeout=5)
    assert result.returncode == 0
    assert result.stdout == b"hello"


def test_it_passes_input_on_stdin() -> None:
    assert proc.run("cat", [], input=b"frames", timeout=5).stdout == b"frames"


def test_a_failure_names_program_exit_code_and_the_tail_of_stderr() -> None:
    script = "for i in $(seq 1 40); do echo line-$i >&2; done; exit 3"
    with pytest.raises(ProcessError) as caught:
        proc.run("sh", ["-c", script], timeout=5, permanent=True)
    err = caught.value
    assert err.program == "sh" and err.returncode == 3
    message = str(err)
    assert message.startswith("sh exited with code 3 (will not be retried)")
    assert "line-40" in message and "line-26" in message
    assert "line-25\n" not in message  # only the last 15 lines
    assert err.permanent is True


def test_a_failure_is_transient_by_default() -> None:
    with pytest.raises(ProcessError) as caught:
        proc.run("sh", ["-c", "exit 1"], timeout=5)
    assert caught.value.permanent is False
    assert "will be retried" in str(caught.value)


def test_a_program_past_its_timeout_is_killed() -> None:
    start = time.monotonic()
    with pytest.raises(ProcessTimeout) as caught:
        proc.run("sh", ["-c", "echo started >&2; sleep 30"], timeout=0.5)
    assert time.monotonic() - start < 5
    assert "sh timed out after 0.5 s and was killed" in str(caught.value)
    assert "started" in str(caught.value)


def test_a_missing_program_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="no-such-program-xyz was not found"):
        proc.run("no-such-program-xyz", [], timeout=5)


def test_ffmpeg_errors_carry_its_stderr() -> None:
    with pytest.raises(ProcessError) as caught:
        proc.run("ffmpeg", ["-hide_banner", "-i", "/nonexistent/input.mp4", "-f", "null", "-"],
                 timeout=10)
    assert caught.value.returncode not in (0, None)
    assert "No such file or directory" in str(caught.value)


def test_a_piped_program_that_dies_raises_process_error_on_write() -> None:
    piped = proc.PipedProcess("sh", ["-c", "echo boom >&2; exit 7"])
    with pytest.raises(ProcessError) as caught:
        for _ in range(200):
            piped.write(b"x" * 65536)
            time.sleep(0.01)
    assert caught.value.returncode == 7
    assert "boom" in str(caught.value)


def test_a_piped_program_finishes_cleanly() -> None:
    piped = proc.PipedProcess("sh", ["-c", "cat > /dev/null"])
    piped.write(b"data")
    assert piped.finish(timeout=5) == 0
