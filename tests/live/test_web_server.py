"""The web process as ``bin/run`` starts it: the Procfile's gunicorn command, production
settings (debug off), collected static files and a fresh SQLite database of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.pipeline import free_port
from tests.support.live import ROOT, answers, wait_for


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name!r} line in the Procfile")


METRICS_TOKEN = "web-server-metrics-" + "m" * 24


@pytest.fixture(scope="module")
def web_server_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("web")


@pytest.fixture(scope="module")
def web_server(web_server_folder):
    tmp_path = web_server_folder
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "AVITO_", "DJANGO_"))
    } | {
        "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
        "DJANGO_DEBUG": "false",
        # Plain HTTP on 127.0.0.1: no HTTPS redirect, no secure-only cookies.
        "DJANGO_HTTPS": "false",
        "DJANGO_SECRET_KEY": "web-server-test-" + "k" * 40,
        "AVITO_DATA_DIR": str(tmp_path / "data"),
        "AVITO_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "METRICS_TOKEN": METRICS_TOKEN,
        # Where gunicorn's processes keep their counts (by default a temporary folder).
        "WEB_METRICS_DIR": str(tmp_path / "metrics"),
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for command in ("migrate", "collectstatic"):
        subprocess.run(
            [sys.executable, "manage.py", command, "--no-input", "-v0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
    log = tmp_path / "web.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_command('web')}"],
            cwd=ROOT, env=env, stdout=output, stderr=output,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: log.read_text().count("Booting worker") == 2, 60, log.read_text)
        wait_for(lambda: answers(url), 30, log.read_text)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        print(log.read_text()[-3000:])


def test_the_web_command_serves_the_seller_pages_in_two_processes(web_server):
    browser = requests.Session()
    page = browser.get(f"{web_server}/accounts/signup/", timeout=10)
    assert page.status_code == 200
    signed_up = browser.post(
        f"{web_server}/accounts/signup/",
        data={
            "username": "samira",
            "password1": "a-long-enough-Passw0rd",
            "password2": "a-long-enough-Passw0rd",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"Referer": f"{web_server}/accounts/signup/"},
        timeout=10,
    )
    assert signed_up.url == f"{web_server}/ads/", signed_up.text[:2000]
    assert "samira" in signed_up.text
    # Plain HTTP (DJANGO_HTTPS=false): the session cookie is sent back, still out of scripts' reach.
    session = next(c for c in browser.cookies if c.name == "sessionid")
    assert not session.secure
    assert session.has_nonstandard_attr("HttpOnly")
    assert session.get_nonstandard_attr("SameSite") == "Lax"

    categories = browser.get(f"{web_server}/api/v1/categories/", timeout=10)
    assert {c["slug"] for c in categories.json()} >= {"laptop", "phone"}


def test_static_files_have_hashed_names_long_caching_and_compression(web_server):
    page = requests.get(f"{web_server}/accounts/login/", timeout=10).text
    stylesheet = re.search(r'href="(/static/ads/sellers\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, page

    response = requests.get(
        f"{web_server}{stylesheet[1]}", headers={"Accept-Encoding": "gzip"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "immutable" in response.headers["Cache-Control"]
    assert "body" in response.text

    assert requests.get(f"{web_server}/static/ads/missing.css", timeout=10).status_code == 404


def _categories_served(web_server: str) -> float:
    """The category list's requests, as /metrics counts them over all the processes."""
    response = requests.get(
        f"{web_server}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "django_http_requests_total_by_view_transport_method_total"
        and sample.labels["view"] == "ads:category-list"
    )


def test_metrics_count_the_requests_of_every_process(web_server, web_server_folder):
    before = _categories_served(web_server)
    # Parallel requests, so that both processes serve some.
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: requests.get(f"{web_server}/api/v1/categories/", timeout=10).status_code,
                range(40),
            )
        )
    assert answers == [200] * 40
    # Both processes served some: each has its file of counts.
    assert len(list((web_server_folder / "metrics").glob("counter_*.db"))) == 2
    # Whichever process answers a scrape speaks for both (prometheus_client multiprocess).
    assert [_categories_served(web_server) for _ in range(6)] == [before + 40] * 6
