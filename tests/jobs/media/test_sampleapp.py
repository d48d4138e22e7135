from __future__ import annotations

import urllib.request


def test_the_sample_app_serves_its_pages(sampleapp_url: str) -> None:
    for page, text in [("index.html", "Overview"), ("projects.html", "New project"),
                       ("reports.html", "chart")]:
        with urllib.request.urlopen(f"{sampleapp_url}/{page}", timeout=5) as resp:
            assert resp.status == 200
            assert text in resp.read().decode()
