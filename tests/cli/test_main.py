"""The command line's own contract, before any request: usage errors exit 4 (argparse's 2 means a partial success
here), the help lists the exit codes, and a key that cannot be sent is refused without being shown."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from screenreel_cli.api import Api, ApiError
from screenreel_cli.main import run

from tests.processes import free_port


def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env=env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_a_usage_error_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["jobs"], ["demos", "refresh"], ["jobs", "create", "s.json", "--timeout", "0"], ["nope"]):
        with pytest.raises(SystemExit) as exited:
            run(argv, env={})
        assert exited.value.code == 4, argv
    assert "error:" in capsys.readouterr().err


def test_the_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["--help"], env={})
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    for line in ("0  the job succeeded", "1  the job failed", "2  the job partly", "3  the demo's version",
                 "4  bad usage or auth"):
        assert line in help_text


def test_no_key_and_a_key_that_cannot_be_one_exit_4_without_showing_it(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    code, out, err = _run("jobs", "create", str(spec))
    assert (code, out) == (4, "") and "SCREENREEL_API_KEY" in err
    secret = "sr_abcdefgh_secret\nvalue"
    code, _, err = _run("jobs", "create", str(spec), env={"SCREENREEL_API_KEY": secret})
    assert code == 4 and "characters an API key never has" in err and "secret" not in err


def test_a_url_that_is_not_http_exits_4(tmp_path: Path) -> None:
    code, _, err = _run("demos", "latest", "X", "--url", "file:///etc/passwd", env={"SCREENREEL_API_KEY": "sr_a_b"})
    assert code == 4 and "--url must be an http:// or https:// URL" in err


def test_a_read_is_tried_again_when_nothing_answers_and_then_fails_as_the_network() -> None:
    pauses: list[float] = []
    api = Api(f"http://127.0.0.1:{free_port()}", "sr_abcdefgh_secret", sleep=pauses.append)
    with pytest.raises(ApiError) as failed:
        api.get("/v1/demos")
    assert (failed.value.status, failed.value.code, failed.value.usage) == (None, "network_error", False)
    assert pauses == [1.0, 2.0, 4.0] and "sr_abcdefgh_secret" not in str(failed.value)
    with pytest.raises(ApiError):
        api.post("/v1/jobs", {})  # a POST without an Idempotency-Key is sent once
    assert pauses == [1.0, 2.0, 4.0]
