"""The Slack sink, as a real process over real HTTP: its webhook, and its Web API called the way
production calls Slack, by slack_sdk's WebClient with `base_url` pointed at it (what Airflow's
SlackHook builds)."""

from __future__ import annotations

import json
import re
import urllib.error

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from dev import services
from dev.slack_sink import DEFAULT_CHANNEL, WEBHOOK_PATH, SlackSinkAdmin

TOKEN = "xoxb-test-4b1d-NEVER-LOG"
TS = re.compile(r"\d{10}\.\d{6}")
HEADER = {"type": "header", "text": {"type": "plain_text", "text": "Stalled batches"}}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*3* cleanups"}}
METADATA = {"event_type": "batch_cleanup_step", "event_payload": {"run_id": "r1", "kind": "alert"}}


@pytest.fixture
def sink(slack_sink: services.Service) -> SlackSinkAdmin:
    """The session's sink (tests/conftest.py), back to its start: no messages, any token."""
    admin = SlackSinkAdmin(slack_sink.url)
    admin.reset()
    return admin


@pytest.fixture
def client(sink: SlackSinkAdmin) -> WebClient:
    return WebClient(token=TOKEN, base_url=sink.api_url, timeout=10)


def refused(call, *args, **kwargs) -> str:
    """Slack's error code for a call slack_sdk raises for (always with HTTP 200, as Slack answers)."""
    with pytest.raises(SlackApiError) as raised:
        call(*args, **kwargs)
    assert raised.value.response.status_code == 200
    assert raised.value.response.data["ok"] is False
    return raised.value.response.data["error"]


def post(client: WebClient, text: str, **kwargs) -> dict:
    return client.chat_postMessage(channel=DEFAULT_CHANNEL, text=text, **kwargs).data


def test_any_path_under_services_is_a_webhook_that_stores_the_message(sink):
    response = requests.post(sink.webhook_url, json={"text": "hello", "blocks": [SECTION]}, timeout=5)
    other = requests.post(f"{sink.base_url}/services/T1/B2/other", json={"text": "x"}, timeout=5)

    assert (response.status_code, response.text, other.text) == (200, "ok", "ok")
    assert response.headers["Content-Type"].startswith("text/plain")
    assert [(m["path"], m["payload"], m["via"]) for m in sink.messages()] == [
        (WEBHOOK_PATH, {"text": "hello", "blocks": [SECTION]}, "webhook"),
        ("/services/T1/B2/other", {"text": "x"}, "webhook"),
    ]


def test_a_webhook_fault_answers_count_times_stores_nothing_and_reset_forgets_it(sink):
    sink.faults([{"status": 429, "retry_after": 2, "count": 2}])

    answers = [requests.post(sink.webhook_url, json={"text": f"try {n}"}, timeout=5) for n in range(3)]

    assert [(a.status_code, a.text) for a in answers] == [(429, "rate_limited")] * 2 + [(200, "ok")]
    assert answers[0].headers["Retry-After"] == "2"
    assert ([m["payload"]["text"] for m in sink.messages()], sink.attempts()) == (["try 2"], 3)
    sink.faults([{"status": 500}])
    sink.reset()
    assert (sink.messages(), sink.attempts()) == ([], 0)
    assert requests.post(sink.webhook_url, json={"text": "y"}, timeout=5).text == "ok"


def test_the_webhook_refuses_what_slack_refuses(sink):
    not_json = requests.post(sink.webhook_url, data=b"text=hi", timeout=5)
    no_text = requests.post(sink.webhook_url, json={"username": "bot"}, timeout=5)

    assert (not_json.status_code, no_text.status_code) == (400, 400)
    assert (not_json.text, no_text.text) == ("invalid_payload", "no_text")
    assert (sink.messages(), sink.attempts()) == ([], 2)


def _button(url: str) -> dict:
    return {"type": "actions", "elements": [{"type": "button", "text": HEADER["text"], "url": url}]}


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (None, "not_authed"),
        ("xoxp-a-user-token", "invalid_auth"),
        ("xoxb-not-the-pinned-one", "invalid_auth"),
    ],
    ids=["no token", "user token", "not the pinned token"],
)
def test_a_call_without_the_bot_token_is_refused(sink, token, error):
    sink.pin_bot_token(TOKEN)

    call = WebClient(token=token, base_url=sink.api_url).chat_postMessage
    assert refused(call, channel=DEFAULT_CHANNEL, text="x") == error
    assert post(WebClient(token=TOKEN, base_url=sink.api_url), "pinned")["ok"] is True
    sink.reset()
    assert post(WebClient(token="xoxb-any", base_url=sink.api_url), "any")["ok"] is True, "reset unpins"
    assert [m["payload"]["text"] for m in sink.messages()] == ["any"]


def test_post_message_answers_like_slack_and_is_stored(sink, client):
    answer = post(client, "fallback", blocks=[HEADER, SECTION], metadata=METADATA)
    later = post(client, "later")

    assert (answer["ok"], answer["channel"]) == (True, DEFAULT_CHANNEL)
    assert TS.fullmatch(answer["ts"]) and answer["ts"] < later["ts"], "unique and increasing"
    payload = {"text": "fallback", "blocks": [HEADER, SECTION], "metadata": METADATA}
    assert answer["message"] == {"type": "message", "user": "U000LOCAL", "ts": answer["ts"], **payload}
    assert sink.messages()[0] == {
        **{"path": "/api/chat.postMessage", "payload": payload, "via": "api", "channel": DEFAULT_CHANNEL},
        **{"ts": answer["ts"], "thread_ts": None, "reply_broadcast": False, "edited": False, "updates": []},
        **{"metadata": METADATA, "reactions": {}},
    }
    assert TOKEN not in json.dumps(sink.messages()) + json.dumps(sink.api_calls())


def blocks(*items: dict) -> dict:
    return {"blocks": list(items)}


# What chat.postMessage (to DEFAULT_CHANNEL unless said) refuses, and Slack's error code.
REFUSED = {
    "unknown channel": ({"channel": "C0NOSUCH", "text": "x"}, "channel_not_found"),
    "no text": ({}, "no_text"),
    "empty text and blocks": ({"text": "", "blocks": []}, "no_text"),
    "unknown block type": (blocks({"type": "no_such_block"}), "invalid_blocks"),
    "mrkdwn header": (blocks({"type": "header", "text": {"type": "mrkdwn", "text": "x"}}), "invalid_blocks"),
    "header too long": (
        blocks({**HEADER, "text": {"type": "plain_text", "text": "x" * 151}}),
        "invalid_blocks",
    ),
    "empty section": (blocks({"type": "section"}), "invalid_blocks"),
    "button without text": (blocks({"type": "actions", "elements": [{"type": "button"}]}), "invalid_blocks"),
    "51 blocks": (blocks(*[SECTION] * 51), "invalid_blocks"),
    "blocks not a list": ({"blocks": "[not a list"}, "invalid_blocks_format"),
    "unknown thread": ({"text": "x", "thread_ts": "1700000000.000001"}, "thread_not_found"),
    "metadata without payload": ({"text": "x", "metadata": {"event_type": "x"}}, "invalid_metadata_format"),
}


@pytest.mark.parametrize(("args", "error"), REFUSED.values(), ids=REFUSED)
def test_post_message_refuses_what_slack_refuses(sink, client, args, error):
    assert refused(client.api_call, "chat.postMessage", json={"channel": DEFAULT_CHANNEL, **args}) == error
    assert sink.messages() == []
    [call] = sink.api_calls()
    assert (call["method"], call["ok"], call["error"]) == ("chat.postMessage", False, error)


@pytest.mark.parametrize(
    "url", ["/dags/d/runs/r", "airflow.example.com/dags/d", "javascript:alert(1)", ""], ids=repr
)
def test_a_button_url_without_scheme_and_host_is_refused_by_webhook_and_web_api(sink, client, url):
    blocks = [SECTION, _button(url)]

    webhook = requests.post(sink.webhook_url, json={"text": "x", "blocks": blocks}, timeout=5)
    api = refused(client.api_call, "chat.postMessage", json={"channel": DEFAULT_CHANNEL, "blocks": blocks})

    assert (webhook.status_code, webhook.text, api) == (400, "invalid_blocks", "invalid_blocks")
    assert sink.messages() == [], "Slack refuses the whole message"
    absolute = [SECTION, _button("https://airflow.example.com/dags/d/runs/r")]
    assert requests.post(sink.webhook_url, json={"text": "x", "blocks": absolute}, timeout=5).text == "ok"


def test_replies_form_a_thread_and_a_broadcast_shows_in_the_channel(sink, client):
    webhook = requests.post(sink.webhook_url, json={"text": "from the webhook"}, timeout=5)
    parent = post(client, "parent")["ts"]
    reply = post(client, "reply", thread_ts=parent)
    broadcast = post(client, "broadcast", thread_ts=parent, reply_broadcast=True)

    assert webhook.text == "ok"
    assert reply["message"]["thread_ts"] == parent and "subtype" not in reply["message"]
    assert broadcast["message"]["subtype"] == "thread_broadcast"
    thread = sink.thread(DEFAULT_CHANNEL, parent)
    assert [(m["payload"]["text"], m["thread_ts"], m["reply_broadcast"]) for m in thread] == [
        ("parent", None, False),
        ("reply", parent, False),
        ("broadcast", parent, True),
    ]
    assert [(m["payload"]["text"], m["via"]) for m in sink.channel_messages()] == [
        ("from the webhook", "webhook"),
        ("parent", "api"),
        ("broadcast", "api"),
    ]
    # Only a top-level message starts a thread: a reply's ts is no thread.
    assert refused(client.chat_postMessage, channel=DEFAULT_CHANNEL, text="x", thread_ts=reply["ts"]) == (
        "thread_not_found"
    )


def test_update_replaces_what_is_given_keeps_the_rest_and_the_thread_and_marks_it_edited(sink, client):
    parent = post(client, "v1", blocks=[HEADER], metadata=METADATA)["ts"]
    post(client, "reply", thread_ts=parent)

    answer = client.chat_update(channel=DEFAULT_CHANNEL, ts=parent, text="v2", blocks=[SECTION]).data
    text_only = client.chat_update(channel=DEFAULT_CHANNEL, ts=parent, text="v3").data

    assert (answer["ok"], answer["channel"], answer["ts"]) == (True, DEFAULT_CHANNEL, parent)
    assert TS.fullmatch(answer["message"]["edited"]["ts"]) and answer["message"]["edited"]["ts"] > parent
    assert answer["message"]["thread_ts"] == parent
    assert (text_only["message"]["blocks"], text_only["message"]["metadata"]) == ([SECTION], METADATA)
    updated, reply = sink.thread(DEFAULT_CHANNEL, parent)
    assert (updated["edited"], updated["payload"]["text"], updated["ts"]) == (True, "v3", parent)
    assert [u["payload"]["text"] for u in updated["updates"]] == ["v1", "v2"]
    assert updated["updates"][0]["payload"]["blocks"] == [HEADER]
    assert (reply["thread_ts"], reply["edited"]) == (parent, False)


def test_an_update_of_what_is_not_there_is_refused(sink, client):
    ts = post(client, "doomed")["ts"]

    unknown = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts="1700000000.000001", text="x")
    channel = refused(client.chat_update, channel="C0NOSUCH", ts=ts, text="x")
    no_text = refused(client.api_call, "chat.update", json={"channel": DEFAULT_CHANNEL, "ts": ts})
    sink.delete_message(DEFAULT_CHANNEL, ts)
    deleted = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts=ts, text="x")

    assert [unknown, channel, no_text] == ["message_not_found", "channel_not_found", "no_text"]
    assert deleted == "message_not_found"
    assert sink.messages() == []


def test_a_reply_to_a_deleted_parent_is_accepted_but_lands_on_its_own_at_the_root(sink, client):
    parent = post(client, "parent")["ts"]
    post(client, "kept reply", thread_ts=parent)

    sink.delete_message(DEFAULT_CHANNEL, parent)
    late = post(client, "late", thread_ts=parent)

    assert late["ok"] and "thread_ts" not in late["message"], "Slack answers with an un-threaded message"
    assert [m["payload"]["text"] for m in sink.thread(DEFAULT_CHANNEL, parent)] == ["kept reply"]
    [stray] = sink.channel_messages()
    assert (stray["ts"], stray["thread_ts"], stray["payload"]["text"]) == (late["ts"], None, "late")
    assert refused(client.conversations_replies, channel=DEFAULT_CHANNEL, ts=parent) == "thread_not_found"
    page = requests.get(sink.base_url + "/", timeout=5).text
    assert "This message was deleted." in page and "kept reply" in page


def test_history_and_replies_page_like_slack_with_metadata_only_when_asked(client):
    first, second, third = (post(client, text, metadata=METADATA)["ts"] for text in "abc")
    replies = [post(client, f"r{i}", thread_ts=first, metadata=METADATA)["ts"] for i in range(3)]

    newest = client.conversations_history(channel=DEFAULT_CHANNEL, limit=2, include_all_metadata=True)
    since = client.conversations_history(channel=DEFAULT_CHANNEL, oldest=first)
    thread = client.conversations_replies(
        channel=DEFAULT_CHANNEL, ts=first, oldest=replies[0], limit=1, include_all_metadata=True
    )

    assert [(m["ts"], m["metadata"]) for m in newest["messages"]] == [(third, METADATA), (second, METADATA)]
    assert newest["has_more"] is True
    assert [m["ts"] for m in since["messages"]] == [third, second], "oldest is exclusive"
    assert all("metadata" not in m for m in since["messages"])
    # The parent first, whatever `oldest` leaves out.
    assert [m["ts"] for m in thread["messages"]] == [first, replies[1]]
    assert all(m["metadata"] == METADATA for m in thread["messages"])
    assert thread["has_more"] is True


def reactions_of(client: WebClient, ts: str) -> dict:
    return client.reactions_get(channel=DEFAULT_CHANNEL, timestamp=ts, full=True).data


def test_reactions_get_answers_like_slack_each_user_once_per_emoji_in_the_order_they_reacted(sink, client):
    ts = post(client, "card", blocks=[HEADER])["ts"]
    untouched = post(client, "other")["ts"]
    for name, user in [("white_check_mark", "U1"), ("no_bell", "U2"), ("white_check_mark", "U3")]:
        sink.react(ts, name, user)
    sink.react(ts, "white_check_mark", "U1")  # again: Slack keeps one reaction per user and emoji

    answer = reactions_of(client, ts)

    assert (answer["ok"], answer["type"], answer["channel"]) == (True, "message", DEFAULT_CHANNEL)
    assert (answer["message"]["ts"], answer["message"]["text"]) == (ts, "card")
    assert answer["message"]["reactions"] == [
        {"name": "white_check_mark", "users": ["U3", "U1"], "count": 2},
        {"name": "no_bell", "users": ["U2"], "count": 1},
    ]
    assert "reactions" not in reactions_of(client, untouched)["message"], "Slack leaves the key out"
    [call, _] = sink.api_calls("reactions.get")
    assert call["args"] == {"channel": DEFAULT_CHANNEL, "timestamp": ts, "full": "1"}


def test_a_reaction_taken_back_is_gone_and_an_emoji_nobody_keeps_is_not_listed(sink, client):
    ts = post(client, "card")["ts"]
    sink.react(ts, "no_bell", "U1")
    sink.react(ts, "white_check_mark", "U2")

    sink.react(ts, "no_bell", "U1", remove=True)

    assert reactions_of(client, ts)["message"]["reactions"] == [
        {"name": "white_check_mark", "users": ["U2"], "count": 1}
    ]
    assert sink.messages()[0]["reactions"] == {"white_check_mark": ["U2"]}


def test_reactions_get_refuses_what_slack_refuses(sink, client):
    ts = post(client, "doomed")["ts"]
    get = client.reactions_get

    unknown = refused(get, channel=DEFAULT_CHANNEL, timestamp="1700000000.000001", full=True)
    channel = refused(get, channel="C0NOSUCH", timestamp=ts, full=True)
    as_nobody, as_user = (WebClient(token=t, base_url=sink.api_url) for t in (None, "xoxp-user"))
    no_token = refused(as_nobody.reactions_get, channel=DEFAULT_CHANNEL, timestamp=ts)
    user_token = refused(as_user.reactions_get, channel=DEFAULT_CHANNEL, timestamp=ts)
    sink.delete_message(DEFAULT_CHANNEL, ts)
    deleted = refused(get, channel=DEFAULT_CHANNEL, timestamp=ts, full=True)

    assert [unknown, channel, no_token, user_token] == [
        "message_not_found",
        "channel_not_found",
        "not_authed",
        "invalid_auth",
    ]
    assert deleted == "message_not_found"


def test_a_reaction_on_no_message_is_a_bad_admin_request(sink):
    with pytest.raises(urllib.error.HTTPError) as raised:
        sink.react("1700000000.000001", "no_bell", "U1")
    assert raised.value.code == 400
    assert "no message '1700000000.000001'" in raised.value.read().decode()


# --- faults ----------------------------------------------------------------------------------------


def test_a_method_fault_answers_that_method_only_and_not_the_webhook(sink, client):
    ts = post(client, "there")["ts"]
    sink.faults([{"method": "chat.update", "error": "message_not_found", "count": 2}, {"status": 500}])

    posted = post(client, "unaffected")
    faulted = [refused(client.chat_update, channel=DEFAULT_CHANNEL, ts=ts, text="x") for _ in range(2)]
    third = client.chat_update(channel=DEFAULT_CHANNEL, ts=ts, text="x")
    webhook = requests.post(sink.webhook_url, json={"text": "x"}, timeout=5)

    assert posted["ok"] and third["ok"]
    assert faulted == ["message_not_found"] * 2
    assert [c["ok"] for c in sink.api_calls("chat.update")] == [False, False, True]
    assert (webhook.status_code, webhook.text, sink.attempts()) == (500, "internal_error", 1)


def test_an_answer_after_fault_stores_the_message_and_answers_too_late_for_the_client(sink):
    sink.faults([{"method": "chat.postMessage", "answer_after_seconds": 1.5}])
    impatient = WebClient(token=TOKEN, base_url=sink.api_url, timeout=0.5)

    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel=DEFAULT_CHANNEL, text="accepted all the same")

    assert [m["payload"]["text"] for m in sink.messages()] == ["accepted all the same"]


def test_a_body_fault_answers_garbage_where_slacks_json_should_be(sink, client):
    ts = post(client, "card")["ts"]
    sink.faults([{"method": "reactions.get", "body": "<html>502 Bad Gateway</html>"}])

    with pytest.raises(SlackApiError) as raised:
        reactions_of(client, ts)

    assert "non-JSON" in raised.value.response.data["error"]
    assert reactions_of(client, ts)["ok"] is True, "once"
