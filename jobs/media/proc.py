"""The one seam for external programs (ffmpeg, ffprobe, espeak-ng).

Everything that runs a program goes through here so that timeouts, killing and error messages are
the same everywhere: a failure always names the program, its exit code and the tail of its stderr.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from jobs.media.errors import ProcessError, ProcessTimeout, Stopped

# While a stop check is set (``stop_when``), a running program is looked at this often.
STOP_POLL_S = 0.5
_STOP: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("proc_stop", default=None)


@contextlib.contextmanager
def stop_when(should_stop: Callable[[], bool]) -> Iterator[None]:
    """While the block runs, ``run`` kills its program as soon as ``should_stop()`` is true (the chunk it works
    for was canceled) and raises ``Stopped``; a program asked for after that does not start."""
    token = _STOP.set(should_stop)
    try:
        yield
    finally:
        _STOP.reset(token)


def _stopped(program: str) -> Stopped:
    return Stopped(f"{program} was stopped: its chunk was canceled or is no longer this worker's")


def _resolve(program: str) -> str:
    # A missing binary is a broken machine, not bad input: transient so an operator can fix and retry.
    path = shutil.which(program)
    if path is None:
        raise ProcessError(program, returncode=None, reason="was not found on PATH", permanent=False)
    return path


def run(
    program: str,
    args: Sequence[str],
    *,
    timeout: float,
    input: bytes | None = None,
    permanent: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``program args...`` to completion; return the completed process or raise ProcessError."""
    should_stop = _STOP.get()
    if should_stop is not None and should_stop():
        raise _stopped(program)
    argv = [_resolve(program), *args]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # so a kill on timeout takes any children with it
        )
    except OSError as exc:
        raise ProcessError(program, returncode=None, reason=f"could not start: {exc}") from exc
    try:
        stdout, stderr = _communicate(proc, program, input=input, timeout=timeout, should_stop=should_stop)
    except subprocess.TimeoutExpired:
        _kill(proc)
        stdout, stderr = proc.communicate()
        raise ProcessTimeout(program, timeout=timeout, stderr=stderr, args=args) from None
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise ProcessError(
            program, returncode=proc.returncode, stderr=stderr, args=args, permanent=permanent
        )
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def _communicate(proc: subprocess.Popen[bytes], program: str, *, input: bytes | None, timeout: float,
                 should_stop: Callable[[], bool] | None) -> tuple[bytes, bytes]:
    """``proc.communicate``, asking ``should_stop`` every STOP_POLL_S on the way (a second call of communicate
    after its timeout picks up where the first left off, output and input included)."""
    if should_stop is None:
        return proc.communicate(input=input, timeout=timeout)
    deadline = time.monotonic() + timeout
    feed = input
    while True:
        remaining = deadline - time.monotonic()
        try:
            return proc.communicate(input=feed, timeout=max(0.0, min(STOP_POLL_S, remaining)))
        except subprocess.TimeoutExpired:
            if remaining <= STOP_POLL_S:
                raise
            if should_stop():
                raise _stopped(program) from None
        feed = None  # given once; communicate keeps feeding what is left of it


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


class PipedProcess:
    """A long-running program fed on stdin (ffmpeg reading frames), with run()'s error shape.

    stderr is drained by a thread into a bounded buffer: an undrained stderr pipe fills up and
    deadlocks ffmpeg while we are blocked writing frames to its stdin.
    """

    def __init__(self, program: str, args: Sequence[str], *, permanent: bool = False) -> None:
        self.program = program
        self.args = list(args)
        self.permanent = permanent
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=200)
        try:
            self._proc = subprocess.Popen(
                [_resolve(program), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessError(program, returncode=None, reason=f"could not start: {exc}") from exc
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> bytes:
        return b"".join(self._stderr)

    def write(self, data: bytes) -> None:
        """Write to stdin; a dead program becomes ProcessError rather than BrokenPipeError."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, ValueError):
            code = self._proc.wait()
            self._drain.join(timeout=5)
            raise self._failed(code) from None

    def finish(self, *, timeout: float) -> int:
        """Close stdin and wait for a clean exit; raise ProcessError/ProcessTimeout otherwise."""
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ProcessTimeout(
                self.program, timeout=timeout, stderr=self.stderr, args=self.args
            ) from None
        self._drain.join(timeout=5)
        if code != 0:
            raise self._failed(code)
        return code

    def _failed(self, code: int) -> ProcessError:
        return ProcessError(self.program, returncode=code, stderr=self.stderr, args=self.args,
                            permanent=self.permanent)

    def kill(self) -> None:
        """Stop the program now (used on failure paths); safe to call more than once."""
        if self._proc.poll() is None:
            _kill(self._proc)
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._proc.wait()
        self._drain.join(timeout=5)
