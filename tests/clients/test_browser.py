"""The webchat example page (modules/webchat) in Debian's headless Chromium, driven by
Selenium through chromium-driver, against the production server: two browsers log in, join
a room, exchange messages, one logs out and its socket drops; a page that was offline shows
what it missed once and in order. Screenshots are saved in ``test-artifacts/browser/``
(git-ignored).

Chromium is a requirement, not an option: ``.ci/run`` installs it, and a machine without it
fails here instead of skipping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

import modules.webchat
from core.testing import AppFactory, Client
from modules.auth.testing import PASSWORD, login, register
from modules.webchat.routes import CSP
from tests.clients.conftest import Serve
from tests.production.helpers import ROOT
from tests.support.http import RemoteClient
from tests.support.js_client import BROWSER_BUNDLE

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
#: What works on these machines: no sandbox as root, no GPU, nothing fetched from Google.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=900,1000",
)
#: Run before the page's own scripts: every WebSocket the page opens, for the test to close.
KEEP_SOCKETS = """
window.__sockets = [];
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    window.__sockets.push(this);
  }
};
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Callable[[str], webdriver.Chrome]]:
    """``browser(name)``: a fresh Chromium (its own profile: nothing shared between two)."""
    for needed in (CHROMIUM, CHROMEDRIVER):
        assert needed.exists(), f"{needed} is missing: apt-get install chromium chromium-driver"
    drivers: list[webdriver.Chrome] = []

    def start(name: str) -> webdriver.Chrome:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={tmp_path / f'chromium-{name}'}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: Selenium Manager never downloads a driver or a browser.
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


class ChatPage:
    """The webchat page in one browser, through what a person sees and clicks."""

    def __init__(self, driver: webdriver.Chrome, url: str) -> None:
        self.driver = driver
        driver.get(f"{url}/public/webchat/")

    def find(self, element_id: str) -> Any:
        return self.driver.find_element(By.ID, element_id)

    def until(self, predicate: Callable[[], object], what: str) -> None:
        WebDriverWait(self.driver, 10).until(lambda _: predicate(), message=what)

    def fill(self, element_id: str, text: str) -> None:
        field = self.find(element_id)
        field.clear()
        field.send_keys(text)

    def status(self) -> tuple[str, str]:
        status = self.find("status")
        return status.get_attribute("data-state"), status.text

    def log_in(self, email: str) -> None:
        self.fill("email", email)
        self.fill("password", PASSWORD)
        self.find("login-button").click()
        self.until(lambda: self.status()[0] == "connected", "the socket to connect")

    def join(self, room: str) -> None:
        self.fill("room-name", room)
        self.find("join-button").click()
        self.until(lambda: self.find("room-title").text == room, f"to be in {room}")

    def send(self, body: str) -> None:
        self.fill("body", body)
        self.find("send-button").click()

    def lines(self) -> list[str]:
        return [item.text for item in self.find("messages").find_elements(By.TAG_NAME, "li")]

    def wait_for_line(self, line: str) -> None:
        self.until(lambda: line in self.lines(), f"{line!r} in {self.lines()}")

    def members(self) -> str:
        return str(self.find("members").text)

    def console(self) -> list[dict[str, Any]]:
        return list(self.driver.get_log("browser"))

    def offline(self, offline: bool) -> None:
        """The browser's network off (or on again), as DevTools emulates it."""
        self.driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )


@pytest.mark.parametrize("serve", ["gunicorn"], indirect=True)
def test_two_browsers_chat_and_logging_out_drops_the_socket(
    serve: Serve, browser: Callable[[str], webdriver.Chrome]
) -> None:
    url = serve()
    http = RemoteClient(url)
    ada, bob = register(http), register(http)  # type: ignore[arg-type]
    pages = {"ada": ChatPage(browser("ada"), url), "bob": ChatPage(browser("bob"), url)}

    pages["ada"].log_in(ada["email"])
    pages["bob"].log_in(bob["email"])
    assert pages["ada"].find("me").text == ada["username"]
    assert pages["ada"].status()[1] in ("Connected (polling)", "Connected (websocket)")

    pages["ada"].join("lobby")
    pages["bob"].join("lobby")  # found by name in list_rooms, joined by id
    pages["ada"].wait_for_line(f"{bob['username']} joined")
    pages["ada"].until(
        lambda: pages["ada"].members() == ", ".join(sorted([ada["username"], bob["username"]])),
        "both in the members list",
    )

    # A message is text, never markup: the tags arrive as characters.
    pages["bob"].send("hello <b>ada</b>")
    pages["ada"].wait_for_line(f"{bob['username']}: hello <b>ada</b>")
    assert not pages["ada"].find("messages").find_elements(By.TAG_NAME, "b")
    pages["ada"].send("hi bob")
    pages["bob"].wait_for_line(f"{ada['username']}: hi bob")
    pages["bob"].wait_for_line(f"{bob['username']}: hello <b>ada</b>")  # senders get theirs too

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, page in pages.items():
        assert page.driver.save_screenshot(str(ARTIFACTS / f"{name}-chatting.png"))

    # Bob logs out over HTTP; the server drops his socket and says why; Ada sees him leave.
    pages["bob"].find("logout").click()
    pages["bob"].until(
        lambda: pages["bob"].status() == ("disconnected", "Signed out: TOKEN_REVOKED"),
        "bob's socket to be dropped",
    )
    assert pages["bob"].find("login").is_displayed()
    pages["ada"].wait_for_line(f"{bob['username']} left")
    assert pages["ada"].members() == ada["username"]
    assert pages["ada"].status()[0] == "connected"
    for name, page in pages.items():
        assert page.driver.save_screenshot(str(ARTIFACTS / f"{name}-after-logout.png"))

    # The page obeyed its Content-Security-Policy: nothing was blocked, nothing failed.
    for name, page in pages.items():
        problems = [entry for entry in page.console() if entry["level"] == "SEVERE"]
        assert problems == [], (name, problems)


@pytest.mark.parametrize("serve", ["dev"], indirect=True)
def test_the_page_has_its_own_csp_and_nothing_else_is_served(serve: Serve) -> None:
    url = serve()
    page = requests.get(f"{url}/public/webchat/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CSP
    assert 'src="socket.io.min.js"' in page.text
    bundle = requests.get(f"{url}/public/webchat/socket.io.min.js", timeout=5)
    assert bundle.status_code == 200
    assert bundle.headers["Content-Type"].startswith("text/javascript")
    # Only the page's files: no path tricks, no other file of the module.
    for name in ("__init__.py", "..%2F__init__.py", "index.html.bak"):
        missing = requests.get(f"{url}/public/webchat/{name}", timeout=5)
        assert missing.status_code == 404, name
        assert missing.headers["Content-Type"] == "application/problem+json"
    # The rest of the app keeps the strict default.
    health = requests.get(f"{url}/health/live", timeout=5)
    assert health.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("serve", ["gunicorn"], indirect=True)
def test_the_page_is_off_in_prod_unless_enabled(serve: Serve) -> None:
    prod = serve({"APP_ENV": None})  # gunicorn without APP_ENV runs the app as prod
    assert requests.get(f"{prod}/public/webchat/", timeout=5).status_code == 404
    assert requests.get(f"{prod}/public/webchat/chat.js", timeout=5).status_code == 404
    enabled = serve({"APP_ENV": None, "WEBCHAT_ENABLED": "true"})
    page = requests.get(f"{enabled}/public/webchat/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CSP


def test_the_page_is_off_when_disabled(make_app: AppFactory) -> None:
    client = make_app({"WEBCHAT_ENABLED": "false"}).test_client()
    for path in ("/public/webchat/", "/public/webchat/chat.js"):
        assert client.get(path).status_code == 404


def test_the_bundle_is_the_pinned_npm_package_unchanged(node: Path) -> None:
    """static/socket.io.min.js is a copy of the package tests/clients/js pins (update both)."""
    served = Path(modules.webchat.__file__).parent / "static" / "socket.io.min.js"
    assert served.read_bytes() == BROWSER_BUNDLE.read_bytes()


@pytest.mark.parametrize("serve", ["gunicorn"], indirect=True)
def test_a_page_that_was_offline_shows_what_it_missed_once_and_in_order(
    serve: Serve,
    browser: Callable[[str], webdriver.Chrome],
    socket_clients: Callable[[], Client],
) -> None:
    """The page remembers the last seq it showed and, after a reconnect, joins again with
    ``since``: the messages sent while it was offline appear, each once, in order."""
    url = serve()
    http = RemoteClient(url)
    ada, bob = register(http), register(http)  # type: ignore[arg-type]
    driver = browser("ada")
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": KEEP_SOCKETS})
    page = ChatPage(driver, url)
    page.log_in(ada["email"])
    page.join("lobby")
    bob_socket = socket_clients()  # another client: python-socketio
    bob_socket.connect(url, login(http, bob["email"])["access_token"])  # type: ignore[arg-type]
    rooms = bob_socket.call("list_rooms", {})["rooms"]
    room_id = next(room["id"] for room in rooms if room["name"] == "lobby")
    assert bob_socket.call("join_room", {"room_id": room_id})["ok"] is True
    page.wait_for_line(f"{bob['username']} joined")
    page.send("before")
    page.wait_for_line(f"{ada['username']}: before")

    # Once the socket runs over a websocket, the network goes and the websocket with it.
    page.until(
        lambda: driver.execute_script("return window.__sockets.some((s) => s.readyState === 1)"),
        "the websocket upgrade",
    )
    page.offline(True)
    driver.execute_script("window.__sockets.forEach((s) => s.close())")
    page.until(lambda: page.status()[0] == "disconnected", "the page to see its socket go")
    for n in range(1, 4):  # sent while the page is offline: it receives none of them live
        assert bob_socket.call("send_message", {"room_id": room_id, "body": f"missed {n}"})["ok"]
    assert page.status()[0] == "disconnected"

    page.offline(False)  # socket.io-client reconnects by itself, within its backoff
    WebDriverWait(driver, 30).until(
        lambda _: page.status()[0] == "connected", message="the page to reconnect"
    )
    page.wait_for_line(f"{bob['username']}: missed 3")
    assert bob_socket.call("send_message", {"room_id": room_id, "body": "after"})["ok"]
    page.wait_for_line(f"{bob['username']}: after")

    said = [line for line in page.lines() if ": " in line]
    assert said == [
        f"{ada['username']}: before",
        f"{bob['username']}: missed 1",
        f"{bob['username']}: missed 2",
        f"{bob['username']}: missed 3",
        f"{bob['username']}: after",
    ]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "ada-after-offline.png"))
    # Only the network failed while offline; no script error.
    problems = [
        entry
        for entry in page.console()
        if entry["level"] == "SEVERE" and entry.get("source") != "network"
    ]
    assert problems == [], problems


@pytest.mark.parametrize("serve", ["gunicorn"], indirect=True)
def test_the_page_refreshes_its_session_in_band_before_the_token_expires(
    serve: Serve, browser: Callable[[str], webdriver.Chrome]
) -> None:
    """``session_expiring``: the page gets a new access token (``POST /public/refresh``) and
    hands it to its socket (``refresh_session``); the socket outlives its first token."""
    url = serve({"JWT_ACCESS_TTL": "4", "SOCKETIO_EXPIRY_NOTICE": "2"})
    http = RemoteClient(url)
    ada = register(http)  # type: ignore[arg-type]
    driver = browser("ada")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": KEEP_SOCKETS})
    page = ChatPage(driver, url)
    page.log_in(ada["email"])
    page.join("refreshing")
    # A token issued after the page's: once it has expired, so has the page's first one.
    later = login(http, ada["email"])["access_token"]  # type: ignore[arg-type]
    WebDriverWait(driver, 30).until(
        lambda _: (
            http.get("/userauth/me", headers={"Authorization": f"Bearer {later}"}).status_code
            == 401
        ),
        message="the first tokens to expire",
    )
    page.send("still here")
    page.wait_for_line(f"{ada['username']}: still here")
    assert page.status()[0] == "connected"
    # The same socket all along: never dropped for TOKEN_EXPIRED and reconnected.
    assert driver.execute_script("return window.__sockets.length") == 1


def _page_and_two_joining(
    url: str,
    browser: Callable[[str], webdriver.Chrome],
    socket_clients: Callable[[], Client],
    room: str,
) -> tuple[ChatPage, tuple[dict[str, Any], ...], list[Client], str, list[dict[str, Any]]]:
    """ada's page joins (creates) ``room``; bob and cat join it over Socket.IO, one after the
    other: the page, the three users, bob's and cat's clients, the room id, their join acks."""
    http = RemoteClient(url)
    people = (register(http), register(http), register(http))  # type: ignore[arg-type]
    page = ChatPage(browser("ada"), url)
    page.log_in(people[0]["email"])
    page.join(room)
    others, acks = [], []
    room_id = ""
    for who in people[1:]:
        other = socket_clients()
        other.connect(url, login(http, who["email"])["access_token"])  # type: ignore[arg-type]
        room_id = next(r["id"] for r in other.call("list_rooms", {})["rooms"] if r["name"] == room)
        acks.append(other.call("join_room", {"room_id": room_id}))
        others.append(other)
    return page, people, others, room_id, acks


@pytest.mark.parametrize("serve", ["gunicorn"], indirect=True)
def test_the_page_shows_how_many_are_in_a_large_room(
    serve: Serve,
    browser: Callable[[str], webdriver.Chrome],
    socket_clients: Callable[[], Client],
) -> None:
    """Past ``SOCKETIO_PRESENCE_EVENTS_MAX`` users a room sends ``room_presence`` (a count)
    instead of ``user_joined``/``user_left``: the page lists whom it knows and how many
    more there are, and says nobody joined or left."""
    page, (ada, _, _), others, room_id, acks = _page_and_two_joining(
        serve({"SOCKETIO_PRESENCE_EVENTS_MAX": "1", "SOCKETIO_ROOM_PRESENCE_INTERVAL": "0.5"}),
        browser,
        socket_clients,
        "crowd",
    )
    assert [ack["member_count"] for ack in acks] == [2, 3]
    page.until(lambda: page.members() == f"{ada['username']} and 2 more", "the count of 3")

    assert others[1].call("leave_room", {"room_id": room_id}) == {"ok": True}
    page.until(lambda: page.members() == f"{ada['username']} and 1 more", "the count of 2")
    assert not [line for line in page.lines() if line.endswith((" joined", " left"))]
    problems = [entry for entry in page.console() if entry["level"] == "SEVERE"]
    assert problems == [], problems


@pytest.mark.parametrize("serve", ["gunicorn"], indirect=True)
def test_the_page_lists_who_is_in_a_room_back_at_the_limit(
    serve: Serve,
    browser: Callable[[str], webdriver.Chrome],
    socket_clients: Callable[[], Client],
) -> None:
    """A user the page listed leaves while the room is large (a count, no ``user_left``);
    the ``room_presence`` that brings the room back to ``SOCKETIO_PRESENCE_EVENTS_MAX``
    lists who is in it, and the page shows them, not the user who left."""
    page, (ada, bob, cat), others, room_id, acks = _page_and_two_joining(
        serve({"SOCKETIO_PRESENCE_EVENTS_MAX": "2", "SOCKETIO_ROOM_PRESENCE_INTERVAL": "0.5"}),
        browser,
        socket_clients,
        "shrinks",
    )
    assert [ack["ok"] for ack in acks] == [True, True]
    names = sorted([ada["username"], bob["username"]])
    page.until(lambda: page.members() == f"{', '.join(names)} and 1 more", "the count of 3")

    assert others[0].call("leave_room", {"room_id": room_id}) == {"ok": True}  # bob
    names = sorted([ada["username"], cat["username"]])
    page.until(lambda: page.members() == ", ".join(names), f"{names} listed")
    problems = [entry for entry in page.console() if entry["level"] == "SEVERE"]
    assert problems == [], problems
