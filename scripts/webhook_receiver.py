"""A local webhook receiver for the demo: verifies every delivery with the Standard Webhooks reference
verifier (the `standardwebhooks` package, not our code) and appends what it saw to a JSON-lines file.

    python scripts/webhook_receiver.py --port 9000 --secret whsec_... --out var/demo/webhooks.jsonl
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def make_handler(secret: str, out: Path) -> type[BaseHTTPRequestHandler]:
    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verifier.verify(body, headers)
                verified, reason = True, ""
            except WebhookVerificationError as exc:
                verified, reason = False, str(exc)
            record = {"verified_by": "standardwebhooks", "verified": verified, "reason": reason,
                      "webhook_id": headers.get("webhook-id"), "x_aisr_id": headers.get("x-aisr-id"),
                      "event": json.loads(body) if verified else None}
            with out.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            self.send_response(204 if verified else 401)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.secret, args.out))
    server.serve_forever()


if __name__ == "__main__":
    main()
