"""The Slack sink's page in a real browser: what was posted through the Web API, shown as Slack
would show it (blocks, mrkdwn, a thread, a broadcast, an edit), and posted markup never run.

Headless Debian Chromium driven by Playwright, as in tests/ui/test_ui_browser.py (whose fixtures
launch it); the screenshot goes to test-output/ui/slack-sink.png.
"""

from __future__ import annotations

import pytest
import requests
from slack_sdk import WebClient

from dev.slack_sink import DEFAULT_CHANNEL, SlackSinkAdmin
from tests.conftest import OUTPUT
from tests.ui.test_ui_browser import browser, chromium  # noqa: F401  (the fixtures)

SHOT = OUTPUT / "ui" / "slack-sink.png"

# Hostile on purpose: raw markup (which Slack would read as a broken link), markup behind Slack's
# escapes, a javascript: link and a broadcast mention. None of it may become an element.
HOSTILE = (
    "<script>window.pwned = 1</script> &lt;b&gt;not bold&lt;/b&gt; "
    '&lt;img src=x onerror="window.pwned = 2"&gt; <javascript:window.pwned=3|click me> <!channel>'
)
SECTION = "*3 cleanups* in _60 min_, ~old~ `b-17` <https://airflow.example/dags/d|the run>\n" + HOSTILE
BUTTON = {
    "type": "button",
    "text": {"type": "plain_text", "text": "Open the DAG run"},
    "url": "https://a.example/r",
}
PARENT_BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": ":rotating_light: WARNING <script>x</script>"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": SECTION}},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "run `scheduled__1` · <!here>"}]},
    {"type": "actions", "elements": [BUTTON]},
    {"type": "divider"},
]


@pytest.fixture
def sink(slack_sink) -> SlackSinkAdmin:
    return SlackSinkAdmin(slack_sink.url)


@pytest.fixture
def conversation(sink: SlackSinkAdmin) -> dict[str, str]:
    """A webhook message, then a parent with two replies (one broadcast), the parent edited last."""
    sink.reset()
    client = WebClient(token="xoxb-page-test", base_url=sink.api_url)
    requests.post(sink.webhook_url, json={"text": "from the *webhook*"}, timeout=5).raise_for_status()
    parent = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="fallback", blocks=PARENT_BLOCKS)["ts"]
    reply = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="first reply _quietly_", thread_ts=parent)
    broadcast = client.chat_postMessage(
        channel=DEFAULT_CHANNEL, text="second reply, *for all*", thread_ts=parent, reply_broadcast=True
    )
    header = {"type": "plain_text", "text": "WARNING (updated) <script>x</script>"}
    blocks = [{**PARENT_BLOCKS[0], "text": header}, *PARENT_BLOCKS[1:]]
    client.chat_update(channel=DEFAULT_CHANNEL, ts=parent, text="fallback", blocks=blocks)
    return {"parent": parent, "reply": reply["ts"], "broadcast": broadcast["ts"]}


def test_the_page_shows_the_channel_as_slack_would(sink, conversation, browser) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    response = page.goto(sink.base_url + "/")

    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none'
    assert page.locator("h1").inner_text() == "#daily-orchestration"
    parent = page.locator(f"article[id='m-{conversation['parent']}']")
    header = parent.locator(".block-header").first
    assert header.inner_text() == "WARNING (updated) <script>x</script>"
    section = parent.locator(".block-section").first
    assert section.locator("strong").first.inner_text() == "3 cleanups"
    assert section.locator("em").first.inner_text() == "60 min"
    assert section.locator("del").inner_text() == "old"
    assert section.locator("code").inner_text() == "b-17"
    assert section.locator("a").first.get_attribute("href") == "https://airflow.example/dags/d"
    assert section.locator("a").first.inner_text() == "the run"
    shown = section.inner_text()
    assert "<script>window.pwned = 1</script>" in shown and "<b>not bold</b>" in shown
    assert '<img src=x onerror="window.pwned = 2">' in shown
    assert "<javascript:window.pwned=3|click me>" in shown
    assert "<!channel>" in shown, "a mention the DAG never sends is shown as its text"
    assert parent.locator(".block-context").first.inner_text() == "run scheduled__1 · <!here>"
    button = parent.locator(".block-actions a.button")
    assert (button.inner_text(), button.get_attribute("href")) == ("Open the DAG run", "https://a.example/r")
    assert parent.locator(".block-divider").count() == 1
    assert parent.locator(".content .edited").first.inner_text() == "(edited)"
    # The thread under its parent, oldest reply first; the broadcast marked in it.
    thread = parent.locator(".thread")
    assert thread.locator(".reply-count").inner_text() == "2 replies"
    replies = thread.locator("article.reply")
    assert replies.count() == 2
    assert replies.nth(0).locator(".content em").inner_text() == "quietly"
    assert replies.nth(1).locator(".broadcast-label").inner_text() == "also sent to the channel"
    # The channel, newest first: the broadcast (again, with its label), the parent, the webhook's message.
    top = page.locator("section.messages > article")
    assert top.count() == 3
    assert "replied to a thread" in top.nth(0).locator(".broadcast-label").inner_text()
    assert "also sent to the channel" in top.nth(0).inner_text()
    assert top.nth(0).locator(".content strong").inner_text() == "for all"
    assert top.nth(1).get_attribute("data-ts") == conversation["parent"]
    webhook = top.nth(2)
    assert (webhook.get_attribute("data-via"), webhook.locator("strong").inner_text()) == ("webhook",) * 2
    assert webhook.locator(".author").inner_text() == "batch-cleanup"
    # Nothing posted ran or became an element.
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert dialogs == []
    assert page.locator("script, img, b, iframe, [onerror]").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0

    SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOT, full_page=True)
