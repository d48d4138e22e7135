"""`make demo`: a real job, end to end, on the embedded defaults.

Starts what it needs (a private Redis unless REDIS_URL is set, the sample web app behind its sign-in, a
Celery worker with beat, the API under uvicorn, a webhook receiver that verifies signatures), stores the
app's account as a credential (a password and a TOTP seed), submits a two-feature job that signs in off
camera and is narrated by per-step lines with chapters, shows progress, downloads the bundle through its
signed link, checks that no secret is in any of its files, prints where the videos, captions and chapters
are and the verified webhook, then stops everything it started.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pyotp

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEMO_DIR = ROOT / "var" / "demo"
TERMINAL = {"succeeded", "partial_success", "failed", "canceled"}
TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start on port {port}")


class Processes:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (DEMO_DIR / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def sign_in(credential: str) -> dict[str, object]:
    """Off camera, once for the job: every feature then starts signed in (docs/credentials.md)."""
    def secret(field: str) -> dict[str, str]:
        return {"credential": credential, "field": field}
    return {"url": "/signin", "steps": [
        {"action": "type", "selector": "#email", "secret": secret("username")},
        {"action": "type", "selector": "#password", "secret": secret("password")},
        {"action": "click", "selector": "#signin"},
        {"action": "type", "selector": "#code", "secret": secret("totp")},  # a fresh code, made as it is typed
        {"action": "click", "selector": "#verify"},
        {"action": "wait_for", "selector": "p.account"},
    ]}


def job_spec(app_url: str, hook_url: str, credential: str) -> dict[str, object]:
    return {
        "target_url": app_url,
        "sign_in": sign_in(credential),
        "viewport": {"width": 1280, "height": 720},
        # Lines per step: each is spoken as its step begins, and the recorder paces the steps to them.
        "features": [
            {"title": "Create a project",
             "steps": [
                 {"action": "goto", "url": "/projects.html", "chapter": "Your projects",
                  "say": "Acme keeps every project your team is building in one place."},
                 {"action": "click", "selector": "text=New project", "chapter": "A new project",
                  "say": "Click New project."},
                 {"action": "type", "selector": "#name", "text": "Launch plan", "say": "Give it a name."},
                 {"action": "press", "key": "Enter", "say": "Press enter, and your new project card appears."},
                 {"action": "wait_for", "selector": ".project-card"},
                 {"action": "hover", "selector": ".project-card"},
                 {"action": "wait", "ms": 800},
             ]},
            {"title": "Explore the dashboard",
             "steps": [
                 {"action": "goto", "url": "/", "say": "The dashboard keeps your whole team in view."},
                 {"action": "wait", "ms": 600},
                 {"action": "scroll", "y": 500, "say": "Scroll down to see live progress for every release."},
                 {"action": "wait", "ms": 800},
                 {"action": "scroll", "y": -500},
             ]},
        ],
        # How the voice says a word, never how the captions write it.
        "voice": {"provider": "auto", "lexicon": {"Acme": "Ack me"}},
        "captions": {"burn_in": False, "language": "en"},
        # The sample app shows who is signed in: the address is blurred before it is ever captured.
        "redact": {"patterns": ["email"]},
        "branding": {"intro_title": "Acme 2.4", "outro_title": "acme.example", "background": "#101828",
                     "accent": "#7F56D9"},
        "webhook_url": hook_url,
        "metadata": {"release": "2.4", "source": "make demo"},
    }


def main() -> int:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONUNBUFFERED": "1",
           # The demo records a local app and delivers to a local receiver: allow loopback only.
           "SCREENREEL_EGRESS_ALLOW": "127.0.0.0/8"}
    procs = Processes()
    try:
        if not env.get("REDIS_URL"):
            redis_port = free_port()
            procs.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(DEMO_DIR)], env)
            wait_for_port(redis_port, "redis-server")
            env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            print(f"• private Redis on port {redis_port}")
        web_port, app_port, hook_port = free_port(), free_port(), free_port()
        env["SCREENREEL_PUBLIC_URL"] = f"http://127.0.0.1:{web_port}"
        python = str(VENV_BIN / "python")

        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([python, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        out = subprocess.run([python, "manage.py", "create_client", "Demo"], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()
        api_key = out[-1]
        secret = next(line.split(": ", 1)[1] for line in out if line.startswith("webhook secret"))
        print(f"• client created ({out[0]})")

        hooks_file = DEMO_DIR / "webhooks.jsonl"
        # The app's one account, made up for this run: the app reads it from its environment (never its command
        # line), and Screenreel gets it as a credential below.
        account = {"SAMPLEAPP_SIGNIN_EMAIL": "jane.doe@acme-corp.com",
                   "SAMPLEAPP_SIGNIN_PASSWORD": "demo-" + secrets.token_urlsafe(12),
                   "SAMPLEAPP_SIGNIN_TOTP": pyotp.random_base32()}
        procs.start("sampleapp", [python, "-m", "sampleapp.serve", "--port", str(app_port), "--signin"],
                    {**env, **account})
        procs.start("receiver", [python, "scripts/webhook_receiver.py", "--port", str(hook_port), "--secret",
                                 secret, "--out", str(hooks_file)], env)
        procs.start("worker", [str(VENV_BIN / "celery"), "-A", "config", "worker", "-B", "-Q",
                               "record,media,deliver,default", "-c", "2", "--loglevel", "INFO",
                               "--schedule", str(DEMO_DIR / "celerybeat-schedule")], env)
        # Sign-ins on their own pool of threads, as in the Procfile: one that waits for a code holds no recorder.
        procs.start("worker-signin", [str(VENV_BIN / "celery"), "-A", "config", "worker", "-Q", "signin", "-P",
                                      "threads", "-c", "4", "-n", "signin@%h", "--loglevel", "INFO"], env)
        procs.start("web", [str(VENV_BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1",
                            "--port", str(web_port), "--log-config", "config/logging.json"], env)
        for port, what in ((app_port, "sample app"), (hook_port, "receiver"), (web_port, "API")):
            wait_for_port(port, what)
        print(f"• API on http://127.0.0.1:{web_port}, sample app on :{app_port}, receiver on :{hook_port}")

        api = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30,
                           headers={"Authorization": f"Bearer {api_key}"})
        made = api.post("/v1/credentials", json={
            "name": "Orbit demo account", "origins": [f"http://127.0.0.1:{app_port}"],
            "values": {"username": account["SAMPLEAPP_SIGNIN_EMAIL"], "password": account["SAMPLEAPP_SIGNIN_PASSWORD"],
                       "totp": account["SAMPLEAPP_SIGNIN_TOTP"]}})
        made.raise_for_status()
        credential = made.json()
        fields = ", ".join(credential["fields_set"])
        print(f"• credential {credential['id']} stored sealed; the API shows which fields are set ({fields}), "
              "never a value")
        spec = job_spec(f"http://127.0.0.1:{app_port}/", f"http://127.0.0.1:{hook_port}/hook", credential["id"])
        response = api.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "demo-1"})
        response.raise_for_status()
        job = response.json()
        print(f"• job {job['id']} submitted with {len(job['chunks'])} features")

        last = ""
        deadline = time.monotonic() + TIMEOUT_S
        while job["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                print("✗ the job did not finish in time; see var/demo/worker.log")
                return 1
            time.sleep(1)
            job = api.get(f"/v1/jobs/{job['id']}").json()
            line = f"  {job['status']:<16}" + "  ".join(f"chunk {c['index']}: {c['status']:<12}"
                                                       for c in job["chunks"])
            if line != last:
                print(line, flush=True)
                last = line
        for chunk in job["chunks"]:
            if chunk["error"]:
                print(f"  chunk {chunk['index']} error: {chunk['error']}")
        if job["status"] != "succeeded":
            print(f"✗ job ended {job['status']}; see var/demo/worker.log")
            return 1

        links = api.get(f"/v1/jobs/{job['id']}/bundle").json()
        bundle_path = DEMO_DIR / f"{job['id']}.zip"
        with httpx.stream("GET", links["bundle"]["url"], timeout=60) as download:
            download.raise_for_status()
            with bundle_path.open("wb") as fh:
                for block in download.iter_bytes():
                    fh.write(block)
        with zipfile.ZipFile(bundle_path) as archive:
            names = archive.namelist()
            manifest = json.loads(archive.read("manifest.json"))
        print(f"• bundle v{links['bundle']['version']}: {len(names)} files, "
              f"{bundle_path.stat().st_size / 1e6:.1f} MB, cost ${manifest['cost']['total_usd']}")
        for name in names:
            print(f"    {name}")

        received: list[dict[str, object]] = []
        for _ in range(50):
            if hooks_file.exists():
                received = [json.loads(line) for line in hooks_file.read_text().splitlines()]
                if received:
                    break
            time.sleep(0.2)
        verified = [r for r in received if r["verified"]]
        if not verified:
            print("✗ no verified webhook arrived; see var/demo/worker.log")
            return 1
        event = verified[-1]["event"]
        assert isinstance(event, dict)
        print(f"• webhook {event['type']} (id {event['id']}) verified by the standardwebhooks package")
        unpacked = DEMO_DIR / job["id"]
        with zipfile.ZipFile(bundle_path) as archive:
            archive.extractall(unpacked)
        needles = [account["SAMPLEAPP_SIGNIN_PASSWORD"].encode(), account["SAMPLEAPP_SIGNIN_TOTP"].encode()]
        files = [f for f in unpacked.rglob("*") if f.is_file()]
        leaked = [f.name for f in files if any(n in f.read_bytes() for n in needles)]
        if leaked:
            print(f"✗ a secret is in {', '.join(leaked)}")
            return 1
        print(f"• signed in off camera once; no secret in any of the bundle's {len(files)} files "
              "(searched for the password and the TOTP seed)")
        for chunk in manifest["chunks"]:
            n = chunk["chunk"]
            chapters = ", ".join(f"{c['start_ms'] / 1000:.1f} s {c['title']}" for c in chunk["timeline"]["chapters"])
            print(f"• chunk {n}: {unpacked / f'chunk-{n}-final.mp4'}")
            print(f"    captions {unpacked / f'chunk-{n}-captions.vtt'} (and .srt, and a soft track in the video)")
            print(f"    chapters {chapters}")
        print(f"\nBundle: {bundle_path}")
        return 0
    finally:
        procs.stop()


if __name__ == "__main__":
    sys.exit(main())
