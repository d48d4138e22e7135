"""The worker tier: real Celery workers on real Redis, against the test PostgreSQL database."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from jobs.models import JOB_ENDED, Job
from sampleapp.serve import ROOT as SAMPLE_ROOT
from sampleapp.serve import serve
from tests.processes import BIN, ROOT, child_env, flush_redis
from tests.receivers import Receiver, receiver
from tests.waiting import wait_for  # noqa: F401  (the e2e tests import it from here)


@pytest.fixture(scope="session")
def sample_app() -> Iterator[str]:
    server, port = serve(0)
    yield f"http://127.0.0.1:{port}/"
    server.shutdown()


@pytest.fixture
def app_copy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The sample app served from a copy its test edits between versions, as a new release would."""
    root = tmp_path / "app"
    shutil.copytree(SAMPLE_ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    server, port = serve(0, root=root)
    yield f"http://127.0.0.1:{port}/", root
    server.shutdown()
    server.server_close()


def release_moves_the_button(root: Path) -> None:
    """A release of the copy: the projects page's button is relabelled and moves to the left of its heading."""
    page = (root / "projects.html").read_text()
    page = page.replace("</span> New project</button>", "</span> Create a project</button>")
    page = page.replace('<div class="row">', '<div class="row" style="flex-direction:row-reverse">')
    (root / "projects.html").write_text(page)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


class Worker:
    """One Celery worker (all queues, with beat) as its own process group, which a test may kill."""

    def __init__(self, env: dict[str, str], log: Path, *, queues: str = "record,signin,media,deliver,default",
                 concurrency: int = 2, beat: bool = True, name: str = "celery", pool: str = "prefork") -> None:
        self.env, self.log = env, log
        self.queues, self.concurrency, self.beat, self.name, self.pool = queues, concurrency, beat, name, pool
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        beat = ["-B", "--schedule", str(self.log.with_suffix(".beat"))] if self.beat else []
        self.proc = subprocess.Popen(
            [str(BIN / "celery"), "-A", "config", "worker", *beat, "-Q", self.queues, "-P", self.pool,
             "-c", str(self.concurrency),
             "-n", f"{self.name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (main process, pool children and beat): nothing gets to clean up."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def worker_env(transactional_db: None, tmp_path: Path) -> dict[str, str]:
    flush_redis()
    # Short leases and a fast sweep so that recovery from a killed worker fits in a test.
    return child_env(SCREENREEL_STAGE_LEASE_S="40", SCREENREEL_RECOVER_EVERY_S="3", SCREENREEL_RECOVER_GRACE_S="3",
                     SCREENREEL_STEP_TIMEOUT_MS="3000")


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    w = Worker(worker_env, tmp_path / "worker.log")
    w.start()
    try:
        yield w
    finally:
        w.stop()
        log = w.log.read_text(errors="replace")
        if "Traceback" in log:
            sys.stderr.write(f"--- worker log (tail) ---\n{log[-6000:]}\n")


def wait_until_ended(job_id: str, timeout: float = 300) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in JOB_ENDED:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end within {timeout}s: {Job.objects.get(pk=job_id).to_dict()}")


def bundle_archive(job: Job) -> zipfile.ZipFile:
    """The zip of the job's current bundle, read from storage as a client would download it."""
    bundle = job.bundles.select_related("stored").get(version=job.run)
    with default_storage.open(bundle.stored.key, "rb") as fh:
        return zipfile.ZipFile(io.BytesIO(fh.read()))
