"""The Slack sink's Web API, as a real process over real HTTP, called the way production calls Slack:
slack_sdk's WebClient with `base_url` pointed at it (what Airflow's SlackHook builds)."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from dev import services
from dev.slack_sink import DEFAULT_CHANNEL, SlackSinkAdmin
from tests.conftest import OUTPUT

LOG_DIR = OUTPUT / "stand-ins"
TOKEN = "xoxb-test-4b1d-NEVER-LOG"
TS = re.compile(r"\d{10}\.\d{6}")
HEADER = {"type": "header", "text": {"type": "plain_text", "text": "Stalled batches"}}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*3* cleanups"}}
MRKDWN_HEADER = {"type": "header", "text": {"type": "mrkdwn", "text": "x"}}
LONG_HEADER = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
BARE_BUTTON = {"type": "actions", "elements": [{"type": "button"}]}
NO_PAYLOAD = {"event_type": "batch_cleanup_alert"}


@pytest.fixture
def sink(slack_sink: services.Service) -> SlackSinkAdmin:
    """The session's sink (tests/conftest.py), back to its start: the default channel, any token."""
    admin = SlackSinkAdmin(slack_sink.url)
    admin.reset()
    return admin


@pytest.fixture
def client(sink: SlackSinkAdmin) -> WebClient:
    return WebClient(token=TOKEN, base_url=sink.api_url, timeout=10)


def refused(call, *args, **kwargs) -> tuple[int, dict]:
    """Slack's answer to a call slack_sdk raises for: the HTTP status and the body."""
    with pytest.raises(SlackApiError) as raised:
        call(*args, **kwargs)
    return raised.value.response.status_code, raised.value.response.data


# --- auth.test -------------------------------------------------------------------------------------


def test_auth_test_names_the_bot(sink: SlackSinkAdmin, client: WebClient) -> None:
    answer = client.auth_test()

    assert answer.status_code == 200
    assert answer.data == {
        "ok": True,
        "url": sink.base_url + "/",
        "team": "Local",
        "user": "batch-cleanup",
        "team_id": "T000LOCAL",
        "user_id": "U000LOCAL",
        "bot_id": "B000LOCAL",
        "is_enterprise_install": False,
    }
    [call] = sink.api_calls()
    assert (call["method"], call["status"], call["ok"]) == ("auth.test", 200, True)
    assert TOKEN not in json.dumps(sink.api_calls())


@pytest.mark.parametrize(
    ("token", "error"),
    [(None, "not_authed"), ("xoxp-a-user-token", "invalid_auth"), ("not-a-token", "invalid_auth")],
    ids=["no token", "user token", "garbage"],
)
def test_a_call_without_a_bot_token_is_refused(sink: SlackSinkAdmin, token: str | None, error: str) -> None:
    client = WebClient(token=token, base_url=sink.api_url)

    assert refused(client.auth_test) == (200, {"ok": False, "error": error})
    assert refused(client.chat_postMessage, channel=DEFAULT_CHANNEL, text="x")[1]["error"] == error
    assert sink.messages() == []


def test_a_pinned_token_is_the_only_one_accepted_until_reset(sink: SlackSinkAdmin) -> None:
    sink.pin_bot_token(TOKEN)

    assert (
        refused(WebClient(token="xoxb-other", base_url=sink.api_url).auth_test)[1]["error"] == "invalid_auth"
    )
    assert WebClient(token=TOKEN, base_url=sink.api_url).auth_test()["ok"] is True
    sink.reset()
    assert WebClient(token="xoxb-other", base_url=sink.api_url).auth_test()["ok"] is True


def test_a_token_pinned_at_start_comes_from_the_environment() -> None:
    service = services.start_slack_sink(LOG_DIR / "pinned", bot_token=TOKEN)
    try:
        api = SlackSinkAdmin(service.url).api_url
        assert WebClient(token=TOKEN, base_url=api).auth_test()["ok"] is True
        assert refused(WebClient(token="xoxb-other", base_url=api).auth_test)[1]["error"] == "invalid_auth"
    finally:
        service.stop()
    assert TOKEN not in service.log_path.read_text()


# --- chat.postMessage ------------------------------------------------------------------------------


def test_post_message_answers_like_slack_and_is_stored(sink: SlackSinkAdmin, client: WebClient) -> None:
    metadata = {"event_type": "batch_cleanup_alert", "event_payload": {"incident": "i-1"}}

    answer = client.chat_postMessage(
        channel=DEFAULT_CHANNEL, text="fallback", blocks=[HEADER, SECTION], metadata=metadata
    )

    assert (answer.status_code, answer["ok"], answer["channel"]) == (200, True, DEFAULT_CHANNEL)
    assert TS.fullmatch(answer["ts"])
    shown = answer["message"]
    assert (shown["ts"], shown["text"], shown["blocks"]) == (answer["ts"], "fallback", [HEADER, SECTION])
    assert (shown["bot_id"], shown["user"], shown["metadata"]) == ("B000LOCAL", "U000LOCAL", metadata)
    assert "thread_ts" not in shown and "edited" not in shown
    [message] = sink.messages()
    assert message == {
        "path": "/api/chat.postMessage",
        "payload": {"text": "fallback", "blocks": [HEADER, SECTION], "metadata": metadata},
        "received_at": message["received_at"],
        "via": "api",
        "channel": DEFAULT_CHANNEL,
        "ts": answer["ts"],
        "thread_ts": None,
        "reply_broadcast": False,
        "edited": False,
        "updates": [],
        "metadata": metadata,
    }
    assert message["received_at"].endswith("+00:00")


def test_ts_are_unique_and_increasing(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel=DEFAULT_CHANNEL, text=f"n{n}")["ts"] for n in range(30)]

    assert len(set(stamps)) == 30
    assert [float(ts) for ts in stamps] == sorted(float(ts) for ts in stamps)
    assert stamps == sorted(stamps)  # the same width each: string order is time order too
    assert abs(float(stamps[0]) - time.time()) < 60


def test_a_channel_may_be_named_in_post_message(client: WebClient) -> None:
    for name in ("daily-orchestration", "#daily-orchestration"):
        assert client.chat_postMessage(channel=name, text="by name")["channel"] == DEFAULT_CHANNEL


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"channel": "C0NOSUCH", "text": "x"}, "channel_not_found"),
        ({"text": "no channel"}, "channel_not_found"),
        ({"channel": DEFAULT_CHANNEL}, "no_text"),
        ({"channel": DEFAULT_CHANNEL, "text": "", "blocks": []}, "no_text"),
        ({"channel": DEFAULT_CHANNEL, "blocks": [{"type": "no_such_block"}]}, "invalid_blocks"),
        ({"channel": DEFAULT_CHANNEL, "blocks": [MRKDWN_HEADER]}, "invalid_blocks"),
        ({"channel": DEFAULT_CHANNEL, "blocks": [LONG_HEADER]}, "invalid_blocks"),
        ({"channel": DEFAULT_CHANNEL, "blocks": [{"type": "section"}]}, "invalid_blocks"),
        ({"channel": DEFAULT_CHANNEL, "blocks": [BARE_BUTTON]}, "invalid_blocks"),
        ({"channel": DEFAULT_CHANNEL, "blocks": [SECTION] * 51}, "invalid_blocks"),
        ({"channel": DEFAULT_CHANNEL, "blocks": "[not json"}, "invalid_blocks_format"),
        ({"channel": DEFAULT_CHANNEL, "text": "x", "thread_ts": "1700000000.000001"}, "thread_not_found"),
        ({"channel": DEFAULT_CHANNEL, "text": "x", "metadata": NO_PAYLOAD}, "invalid_metadata_format"),
    ],
    ids=[
        "unknown channel", "no channel", "no text", "empty text and blocks", "unknown block type",
        "mrkdwn header", "header too long", "empty section", "button without text", "51 blocks",
        "blocks not json", "unknown thread", "metadata without payload",
    ],
)  # fmt: skip
def test_post_message_refuses_what_slack_refuses(
    sink: SlackSinkAdmin, client: WebClient, args: dict, error: str
) -> None:
    assert refused(client.api_call, "chat.postMessage", json=args) == (200, {"ok": False, "error": error})
    assert sink.messages() == []
    [call] = sink.api_calls()
    assert (call["method"], call["ok"], call["error"]) == ("chat.postMessage", False, error)


def test_an_archived_channel_takes_no_message(sink: SlackSinkAdmin, client: WebClient) -> None:
    sink.create_channel("C0ARCHIVE", "old-alerts", archived=True)

    assert refused(client.chat_postMessage, channel="C0ARCHIVE", text="x")[1]["error"] == "is_archived"
    assert {"id": "C0ARCHIVE", "name": "old-alerts", "is_archived": True} in sink.channels()
    assert sink.messages() == []


def test_replies_form_a_thread_and_a_broadcast_shows_in_the_channel(
    sink: SlackSinkAdmin, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="parent")["ts"]
    reply = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="reply", thread_ts=parent)
    broadcast = client.chat_postMessage(
        channel=DEFAULT_CHANNEL, text="broadcast", thread_ts=parent, reply_broadcast=True
    )

    assert reply["message"]["thread_ts"] == parent and "subtype" not in reply["message"]
    assert broadcast["message"]["subtype"] == "thread_broadcast"
    thread = sink.thread(DEFAULT_CHANNEL, parent)
    assert [m["payload"]["text"] for m in thread] == ["parent", "reply", "broadcast"]
    assert [(m["thread_ts"], m["reply_broadcast"]) for m in thread[1:]] == [(parent, False), (parent, True)]
    assert [m["payload"]["text"] for m in sink.channel_messages()] == ["parent", "broadcast"]
    # Only a top-level message starts a thread: a reply's ts is no thread.
    nested = refused(client.chat_postMessage, channel=DEFAULT_CHANNEL, text="x", thread_ts=reply["ts"])
    assert nested[1]["error"] == "thread_not_found"


def test_form_encoded_arguments_are_accepted_too(sink: SlackSinkAdmin) -> None:
    parent = requests.post(
        sink.api_url + "chat.postMessage",
        data={"token": TOKEN, "channel": DEFAULT_CHANNEL, "text": "form", "blocks": json.dumps([SECTION])},
        timeout=10,
    ).json()
    reply = requests.post(
        sink.api_url + "chat.postMessage",
        data={"channel": DEFAULT_CHANNEL, "text": "r", "thread_ts": parent["ts"], "reply_broadcast": "true"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).json()

    assert (parent["ok"], parent["message"]["blocks"]) == (True, [SECTION])
    assert reply["message"]["subtype"] == "thread_broadcast"
    assert [m["payload"]["text"] for m in sink.messages()] == ["form", "r"]
    assert TOKEN not in json.dumps(sink.messages()) + json.dumps(sink.api_calls())


def test_an_unknown_method_is_named_so(client: WebClient) -> None:
    assert refused(client.api_call, "chat.delete", json={"channel": DEFAULT_CHANNEL})[1] == {
        "ok": False,
        "error": "unknown_method",
    }


# --- chat.update -----------------------------------------------------------------------------------


def test_update_replaces_the_content_keeps_the_thread_and_marks_it_edited(
    sink: SlackSinkAdmin, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="v1", blocks=[HEADER])["ts"]
    client.chat_postMessage(channel=DEFAULT_CHANNEL, text="reply", thread_ts=parent)

    answer = client.chat_update(channel=DEFAULT_CHANNEL, ts=parent, text="v2", blocks=[SECTION])
    text_only = client.chat_update(channel=DEFAULT_CHANNEL, ts=parent, text="v3")

    assert (answer["ok"], answer["channel"], answer["ts"], answer["text"]) == (
        True,
        DEFAULT_CHANNEL,
        parent,
        "v2",
    )
    assert answer["message"]["blocks"] == [SECTION]
    assert TS.fullmatch(answer["message"]["edited"]["ts"]) and answer["message"]["edited"]["ts"] > parent
    assert (answer["message"]["reply_count"], answer["message"]["thread_ts"]) == (1, parent)
    assert text_only["message"]["blocks"] == [SECTION], "blocks not given are kept, as on Slack"
    updated, reply = sink.thread(DEFAULT_CHANNEL, parent)
    assert (updated["edited"], updated["payload"]["text"], updated["ts"]) == (True, "v3", parent)
    assert [u["payload"]["text"] for u in updated["updates"]] == ["v1", "v2"]
    assert updated["updates"][0]["payload"]["blocks"] == [HEADER]
    assert (reply["thread_ts"], reply["edited"]) == (parent, False)


def test_update_of_what_is_not_there(sink: SlackSinkAdmin, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="doomed")["ts"]
    sink.create_channel("C0OTHER", "other")
    other = client.chat_postMessage(channel="C0OTHER", text="elsewhere")["ts"]

    unknown_ts = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts="1700000000.000001", text="x")
    wrong_channel = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts=other, text="x")
    no_text = refused(client.api_call, "chat.update", json={"channel": DEFAULT_CHANNEL, "ts": ts})
    sink.delete_message(DEFAULT_CHANNEL, ts)
    deleted = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts=ts, text="x")
    sink.delete_channel("C0OTHER")
    gone = refused(client.chat_update, channel="C0OTHER", ts=other, text="x")

    assert [answer[1]["error"] for answer in (unknown_ts, wrong_channel, no_text, deleted, gone)] == [
        "message_not_found",
        "message_not_found",
        "no_text",
        "message_not_found",
        "channel_not_found",
    ]
    assert sink.messages() == [] and all(answer[0] == 200 for answer in (unknown_ts, deleted, gone))


def test_a_reply_to_a_deleted_parent_is_accepted_but_lands_on_its_own_at_the_root(
    sink: SlackSinkAdmin, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="parent")["ts"]
    client.chat_postMessage(channel=DEFAULT_CHANNEL, text="kept reply", thread_ts=parent)

    sink.delete_message(DEFAULT_CHANNEL, parent)
    late = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="late", thread_ts=parent)

    assert late["ok"] and "thread_ts" not in late["message"], "Slack answers with an un-threaded message"
    assert [m["payload"]["text"] for m in sink.thread(DEFAULT_CHANNEL, parent)] == ["kept reply"]
    [stray] = sink.channel_messages()
    assert (stray["ts"], stray["thread_ts"], stray["payload"]["text"]) == (late["ts"], None, "late")
    edit = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts=parent, text="x")
    assert edit[1]["error"] == "message_not_found"
    page = requests.get(sink.base_url + "/", timeout=5).text
    assert "This message was deleted." in page and "kept reply" in page


METADATA = {"event_type": "batch_cleanup_step", "event_payload": {"run_id": "r1", "kind": "alert"}}


def test_metadata_is_kept_and_shown_by_history_and_replies_only_when_asked(
    sink: SlackSinkAdmin, client: WebClient
) -> None:
    posted = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="parent", metadata=METADATA)
    client.chat_update(channel=DEFAULT_CHANNEL, ts=posted["ts"], text="edited")  # metadata not given: kept
    reply = client.chat_postMessage(
        channel=DEFAULT_CHANNEL, text="reply", thread_ts=posted["ts"], metadata=METADATA
    )

    assert posted["message"]["metadata"] == METADATA
    history = client.conversations_history(channel=DEFAULT_CHANNEL, include_all_metadata=True, limit=5)
    assert [(m["text"], m["metadata"]) for m in history["messages"]] == [("edited", METADATA)]
    thread = client.conversations_replies(channel=DEFAULT_CHANNEL, ts=posted["ts"], include_all_metadata=True)
    assert [(m["ts"], m.get("metadata")) for m in thread["messages"]] == [
        (posted["ts"], METADATA),
        (reply["ts"], METADATA),
    ]
    bare = client.conversations_history(channel=DEFAULT_CHANNEL)
    assert "metadata" not in bare["messages"][0]
    bad = refused(
        client.api_call,
        "chat.postMessage",
        json={"channel": DEFAULT_CHANNEL, "text": "x", "metadata": {"event_type": "x"}},
    )
    assert bad[1]["error"] == "invalid_metadata_format"


def test_history_is_newest_first_and_bounded_replies_oldest_first_after_their_parent(
    client: WebClient,
) -> None:
    first, second, third = (client.chat_postMessage(channel=DEFAULT_CHANNEL, text=t)["ts"] for t in "abc")
    replies = [
        client.chat_postMessage(channel=DEFAULT_CHANNEL, text=f"r{i}", thread_ts=first)["ts"]
        for i in range(3)
    ]

    newest = client.conversations_history(channel=DEFAULT_CHANNEL, limit=2)
    since = client.conversations_history(channel=DEFAULT_CHANNEL, oldest=first)
    thread = client.conversations_replies(channel=DEFAULT_CHANNEL, ts=first, oldest=replies[0], limit=1)

    assert [m["ts"] for m in newest["messages"]] == [third, second] and newest["has_more"] is True
    assert [m["ts"] for m in since["messages"]] == [third, second], "oldest is exclusive"
    assert [m["ts"] for m in thread["messages"]] == [first, replies[1]] and thread["has_more"] is True
    assert refused(client.conversations_replies, channel=DEFAULT_CHANNEL, ts="1700000000.000001")[1] == {
        "ok": False,
        "error": "thread_not_found",
    }


def test_admin_calls_say_what_they_could_not_find(sink: SlackSinkAdmin) -> None:
    for path, body in [
        ("/admin/delete-message", {"channel": DEFAULT_CHANNEL, "ts": "1.000001"}),
        ("/admin/delete-channel", {"channel": "C0NOSUCH"}),
        ("/admin/bot-token", {"token": "xoxp-user"}),
    ]:
        response = requests.post(sink.base_url + path, json=body, timeout=5)
        assert response.status_code == 400, path
        assert "bad admin request" in response.json()["error"]


# --- faults ----------------------------------------------------------------------------------------


def test_a_method_fault_answers_that_method_only(sink: SlackSinkAdmin, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="there")["ts"]
    sink.faults([{"method": "chat.update", "error": "message_not_found", "count": 2}])

    posted = client.chat_postMessage(channel=DEFAULT_CHANNEL, text="unaffected")
    first = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts=ts, text="x")
    second = refused(client.chat_update, channel=DEFAULT_CHANNEL, ts=ts, text="x")
    third = client.chat_update(channel=DEFAULT_CHANNEL, ts=ts, text="x")

    assert posted["ok"] and third["ok"]
    assert first == second == (200, {"ok": False, "error": "message_not_found"})
    assert [c["ok"] for c in sink.api_calls("chat.update")] == [False, False, True]


def test_webhook_faults_and_api_faults_keep_apart(sink: SlackSinkAdmin, client: WebClient) -> None:
    sink.faults([{"status": 500}, {"method": "*", "status": 503}])

    api = refused(client.auth_test)
    webhook = requests.post(sink.webhook_url, json={"text": "x"}, timeout=5)

    assert api == (503, {"ok": False, "error": "service_unavailable"})
    assert (webhook.status_code, webhook.text) == (500, "internal_error")
    assert client.auth_test()["ok"] and requests.post(sink.webhook_url, json={"text": "y"}, timeout=5).ok
    assert sink.attempts() == 2, "the webhook's count leaves Web API calls out"


def test_a_rate_limit_carries_retry_after_and_slack_sdk_waits_it_out(
    sink: SlackSinkAdmin, client: WebClient
) -> None:
    sink.faults([{"method": "chat.postMessage", "status": 429, "retry_after": 1}])
    patient = WebClient(token=TOKEN, base_url=sink.api_url, retry_handlers=[RateLimitErrorRetryHandler(1)])

    started = time.monotonic()
    answer = patient.chat_postMessage(channel=DEFAULT_CHANNEL, text="after the wait")

    assert answer["ok"] and time.monotonic() - started >= 1
    assert [(c["status"], c["error"]) for c in sink.api_calls()] == [(429, "ratelimited"), (200, None)]
    sink.faults([{"method": "chat.postMessage", "status": 429, "retry_after": 7}])
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel=DEFAULT_CHANNEL, text="x")
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response.data == {"ok": False, "error": "ratelimited"}


def test_a_server_error_is_retried_by_slack_sdk(sink: SlackSinkAdmin) -> None:
    sink.faults([{"method": "chat.postMessage", "status": 503}])
    client = WebClient(token=TOKEN, base_url=sink.api_url, retry_handlers=[ServerErrorRetryHandler(1)])

    assert client.chat_postMessage(channel=DEFAULT_CHANNEL, text="second try")["ok"]
    assert [c["status"] for c in sink.api_calls()] == [503, 200]
    assert len(sink.messages()) == 1


def test_a_delay_fault_holds_the_answer(sink: SlackSinkAdmin) -> None:
    sink.faults(
        [{"method": "auth.test", "delay_seconds": 1.5}, {"method": "auth.test", "delay_seconds": 0.3}]
    )
    impatient = WebClient(token=TOKEN, base_url=sink.api_url, timeout=0.5)

    with pytest.raises(TimeoutError):
        impatient.auth_test()
    started = time.monotonic()
    assert impatient.auth_test()["ok"] and time.monotonic() - started >= 0.3


def test_an_answer_after_fault_stores_the_message_and_answers_too_late_for_the_client(
    sink: SlackSinkAdmin,
) -> None:
    sink.faults([{"method": "chat.postMessage", "answer_after_seconds": 1.5}])
    impatient = WebClient(token=TOKEN, base_url=sink.api_url, timeout=0.5)

    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel=DEFAULT_CHANNEL, text="accepted all the same")

    assert [m["payload"]["text"] for m in sink.messages()] == ["accepted all the same"]


# --- the webhook next to the Web API ----------------------------------------------------------------


def test_webhook_messages_join_the_default_channel(sink: SlackSinkAdmin, client: WebClient) -> None:
    requests.post(sink.webhook_url, json={"text": "from the webhook"}, timeout=5)
    client.chat_postMessage(channel=DEFAULT_CHANNEL, text="from the api")

    webhook, api = sink.channel_messages()
    assert (webhook["via"], webhook["channel"], webhook["path"]) == (
        "webhook",
        DEFAULT_CHANNEL,
        sink.webhook_url[len(sink.base_url) :],
    )
    assert TS.fullmatch(webhook["ts"]) and webhook["ts"] < api["ts"]
    assert (webhook["thread_ts"], webhook["edited"], webhook["updates"]) == (None, False, [])
    assert api["via"] == "api"


def _button(url: str) -> dict:
    return {"type": "actions", "elements": [{"type": "button", "text": HEADER["text"], "url": url}]}


@pytest.mark.parametrize(
    "url", ["/dags/d/runs/r", "airflow.example.com/dags/d", "javascript:alert(1)", ""], ids=repr
)
def test_a_button_url_without_scheme_and_host_is_refused_by_webhook_and_web_api(
    sink: SlackSinkAdmin, client: WebClient, url: str
) -> None:
    blocks = [SECTION, _button(url)]

    webhook = requests.post(sink.webhook_url, json={"text": "x", "blocks": blocks}, timeout=5)
    api = refused(client.api_call, "chat.postMessage", json={"channel": DEFAULT_CHANNEL, "blocks": blocks})

    assert (webhook.status_code, webhook.text) == (400, "invalid_blocks"), "Slack refuses the whole message"
    assert api == (200, {"ok": False, "error": "invalid_blocks"})
    assert sink.messages() == []
    absolute = [SECTION, _button("https://airflow.example.com/dags/d/runs/r")]
    assert requests.post(sink.webhook_url, json={"text": "x", "blocks": absolute}, timeout=5).text == "ok"


@pytest.mark.parametrize(
    ("archived", "status", "body"), [(False, 404, "channel_not_found"), (True, 410, "channel_is_archived")]
)
def test_the_webhook_of_a_gone_channel_answers_like_slack(
    sink: SlackSinkAdmin, archived: bool, status: int, body: str
) -> None:
    if archived:
        sink.create_channel(DEFAULT_CHANNEL, "daily-orchestration", archived=True)
    else:
        sink.delete_channel(DEFAULT_CHANNEL)

    response = requests.post(sink.webhook_url, json={"text": "lost"}, timeout=5)

    assert (response.status_code, response.text) == (status, body)
    sink.reset()
    assert requests.post(sink.webhook_url, json={"text": "back"}, timeout=5).text == "ok"
    assert sink.channels() == [{"id": DEFAULT_CHANNEL, "name": "daily-orchestration", "is_archived": False}]


# --- through Airflow's SlackHook ---------------------------------------------------------------------


def test_slack_hook_reaches_the_sink_through_its_connection(
    sink: SlackSinkAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.slack.hooks.slack import SlackHook

    connection = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": sink.api_url}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_SINK_API_TEST", json.dumps(connection))
    hook = SlackHook(slack_conn_id="slack_sink_api_test")

    assert hook.test_connection()[0] is True
    ts = hook.client.chat_postMessage(channel=DEFAULT_CHANNEL, text="via the hook")["ts"]
    hook.client.chat_update(channel=DEFAULT_CHANNEL, ts=ts, text="edited via the hook")

    [message] = sink.messages()
    assert (message["payload"]["text"], message["edited"]) == ("edited via the hook", True)
    methods = [call["method"] for call in sink.api_calls()]
    assert methods[0] == "auth.test"  # test_connection's
    assert [method for method in methods if method != "auth.test"] == ["chat.postMessage", "chat.update"]
