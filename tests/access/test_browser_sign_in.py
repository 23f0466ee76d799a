"""A person signs in to the web UI in headless Chromium through the real OpenID Connect provider
(authorization code + PKCE, S256) and sees the project it has a role in, and not the other one.

The token stays in the tab (sessionStorage, never localStorage) and goes out as a Bearer header; the
page runs under its Content-Security-Policy (the provider's token endpoint is its one other origin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from medal.app import build_app
from medal.local_server import free_port, serve_in_thread
from tests.access.conftest import MACHINES, PEOPLE, PLATFORM_KEY, access_settings
from tests.access.provider import WEB_CLIENT, Provider, install
from tests.annotation.ui.browser import chromium, missing
from tests.conftest import unavailable


@pytest.fixture(scope="module")
def signed_in_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, webdriver.Chrome]]:
    for problem in (install(), missing()):
        if problem:
            unavailable(problem)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = Provider(tmp_path_factory.mktemp("oidc-ui"), MACHINES, PEOPLE, redirect_uris=(f"{base}/annotation/ui/",))
    provider.start()
    try:
        settings = access_settings(Path(tmp_path_factory.mktemp("ui-state")), provider, oidc_client_id=WEB_CLIENT)
        app = build_app(settings, ["annotation"], consume=False, migrate=True)
        with serve_in_thread(app, port=port), chromium() as driver:
            platform = {"X-API-Key": PLATFORM_KEY}
            for name in ("alpha", "beta"):  # rita's token makes her a reviewer of beta (PEOPLE)
                created = httpx.post(f"{base}/annotation/v1/projects", json={"name": name}, headers=platform)
                assert created.status_code == 201, created.text
            yield base, driver
    finally:
        provider.stop()


def wait(driver: webdriver.Chrome, condition: object, seconds: float = 30) -> object:
    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)  # type: ignore[arg-type]


def test_sign_in_with_code_and_pkce_shows_only_the_persons_projects(signed_in_ui: tuple[str, webdriver.Chrome]) -> None:
    base, driver = signed_in_ui
    page = httpx.get(f"{base}/", headers={"Accept": "text/html"}, follow_redirects=True)
    assert str(page.url) == f"{base}/annotation/ui/"  # a browser at the root lands on the UI
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy

    driver.get(f"{base}/")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-action=sign-in]"))
    driver.find_element(By.CSS_SELECTOR, "[data-action=sign-in]").click()
    for _ in range(6):  # the provider's sign-in page, then its consent page, then back to the UI
        wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")
        if driver.current_url.startswith(base):
            break
        logins = driver.find_elements(By.NAME, "login")
        if logins:
            logins[0].send_keys("rita")
            driver.find_element(By.NAME, "password").send_keys("any password")
        url = driver.current_url
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(driver, lambda d, before=url: d.current_url != before)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=projects] [data-project]"))
    shown = [e.get_attribute("data-project") for e in driver.find_elements(By.CSS_SELECTOR, "[data-project]")]
    assert shown == ["beta"]
    assert "Rita Reviewer" in driver.find_element(By.CSS_SELECTOR, "[data-testid=me]").text
    assert not driver.find_elements(By.NAME, "name")  # no create-project form: only platform admins create
    assert "code=" not in driver.current_url  # the code is gone from the address bar
    stored = driver.execute_script("return [sessionStorage.getItem('medal.token'), Object.keys(localStorage)]")
    assert stored[0] and "access_token" in stored[0]
    assert not any("token" in key or "apiKey" in key for key in stored[1])

    driver.get(f"{base}/annotation/ui/#/p/beta")
    wait(driver, lambda d: "beta" in d.find_element(By.TAG_NAME, "h1").text)
    assert driver.find_elements(By.CSS_SELECTOR, "a[href='#/p/beta/review']")  # a reviewer reviews
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=export]")  # but does not export
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-action=start]")  # nor start rounds
    driver.get(f"{base}/annotation/ui/#/p/alpha")
    error = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=page-error]"))
    assert "no project named alpha" in error[0].text  # type: ignore[index]
