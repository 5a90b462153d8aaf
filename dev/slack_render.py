"""Slack's mrkdwn, Block Kit and a channel with its threads as HTML, for the Slack sink's page:
what the DAG's messages use (header, section, context, actions with link buttons), and a divider.

Pure functions, standard library only. Everything they render was posted by someone else and is
hostile data: every piece of it is HTML-escaped, links keep only http(s) targets, and
attribute values are escaped with their quotes, so nothing posted can add an element or a script.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

LINK_SCHEMES = ("http://", "https://")
REFRESH_SECONDS = 5
# The shortcodes the DAG's messages use; any other is shown as its :code:.
EMOJI = {
    "alarm_clock": "⏰",
    "chart_with_upwards_trend": "📈",
    "hourglass": "⌛",
    "rotating_light": "🚨",
    "test_tube": "🧪",
    "white_check_mark": "✅",
    "x": "❌",
}

_SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
_PREFORMATTED = re.compile(r"```(.+?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_CONTROL = re.compile(r"<([^<>\n]*)>")
_EMOJI_CODE = re.compile(r":([a-z0-9_+-]+):")
# Slack's emphasis: the marker opens after a line start, space or punctuation, closes before one,
# and hugs its text; it never spans lines. Applied to already-escaped text (no marker is in an entity).
_EMPHASIS = [
    (re.compile(rf"(?<![\w{m}]){m}(?![\s{m}])(.+?)(?<![\s{m}]){m}(?![\w{m}])"), tag)
    for m, tag in ((r"\*", "strong"), ("_", "em"), ("~", "del"))
]
# Placeholders for what is rendered apart (code, links, mentions): private-use characters, which
# are taken out of the posted text first so that it cannot forge one.
_HOLE_START, _HOLE_END = "\ue000", "\ue001"
_HOLE = re.compile(f"{_HOLE_START}(\\d+){_HOLE_END}")


def unescape(text: str) -> str:
    """Slack's three escapes, and only those: `&amp;lt;` stays the literal text `&lt;`."""
    return _SLACK_ENTITY.sub(lambda match: {"amp": "&", "lt": "<", "gt": ">"}[match[1]], text)


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def emoji(escaped: str) -> str:
    return _EMOJI_CODE.sub(lambda match: EMOJI.get(match[1], match[0]), escaped)


def plain(text: object) -> str:
    """A `plain_text` object's text: shown as it is, line breaks kept."""
    return emoji(escape(str(text))).replace("\n", "<br>")


def mrkdwn(text: object) -> str:
    """Slack's mrkdwn as HTML: *bold*, _italic_, ~strike~, `code`, ```pre```, links, mentions and
    :emoji:, with `&amp;`, `&lt;`, `&gt;` shown as the characters they stand for."""
    holes: list[str] = []

    def hole(rendered: str) -> str:
        holes.append(rendered)
        return f"{_HOLE_START}{len(holes) - 1}{_HOLE_END}"

    source = str(text).replace(_HOLE_START, "\ufffd").replace(_HOLE_END, "\ufffd")
    source = _PREFORMATTED.sub(lambda m: hole(f"<pre>{escape(unescape(m[1].strip(chr(10))))}</pre>"), source)
    source = _CODE.sub(lambda match: hole(f"<code>{escape(unescape(match[1]))}</code>"), source)
    source = _CONTROL.sub(lambda match: hole(_control(match[1])), source)
    shown = emoji(escape(unescape(source)))
    for pattern, tag in _EMPHASIS:
        shown = pattern.sub(rf"<{tag}>\1</{tag}>", shown)
    shown = shown.replace("\n", "<br>")
    return _HOLE.sub(lambda match: holes[int(match[1])], shown)


def _control(inner: str) -> str:
    """One `<...>` sequence: a link; anything else (a mention, a date) is shown as its text."""
    target, _, label = inner.partition("|")
    if target.lower().startswith(LINK_SCHEMES):
        url = unescape(target)
        shown = escape(unescape(label) or url)
        return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{shown}</a>'
    return escape(f"<{unescape(inner)}>")


# --- Block Kit -------------------------------------------------------------------------------------


def text_object(obj: object) -> str:
    """A composition text object: `mrkdwn` rendered, `plain_text` shown as it is."""
    if not isinstance(obj, dict):
        return ""
    return (mrkdwn if obj.get("type") == "mrkdwn" else plain)(obj.get("text", ""))


def element(obj: object) -> str:
    """An element of an `actions` or `context` block: a text, a button (a link when its URL is one)."""
    if not isinstance(obj, dict):
        return ""
    kind, url = obj.get("type"), obj.get("url")
    if kind in ("mrkdwn", "plain_text"):
        return f"<span>{text_object(obj)}</span>"
    if kind == "button" and isinstance(url, str) and url.lower().startswith(LINK_SCHEMES):
        label = text_object(obj.get("text"))
        return f'<a class="button" href="{escape(url)}" target="_blank" rel="noopener noreferrer">{label}</a>'
    if kind == "button":
        return f'<button type="button" class="button">{text_object(obj.get("text"))}</button>'
    return f'<span class="element">[{escape(str(kind))}]</span>'


def block(item: dict[str, Any]) -> str:
    """One block as HTML; a block type this page does not draw says so in its place."""
    kind = item.get("type")
    elements = item.get("elements") if isinstance(item.get("elements"), list) else []
    if kind == "header":
        inner = text_object(item.get("text"))
    elif kind == "section":
        inner = f'<div class="section-text">{text_object(item.get("text"))}</div>'
    elif kind in ("context", "actions"):
        inner = (" " if kind == "context" else "").join(element(one) for one in elements)
    elif kind == "divider":
        return '<hr class="block block-divider">'
    else:
        return f'<div class="block unsupported">[{escape(str(kind))} block]</div>'
    return f'<div class="block block-{kind}">{inner}</div>'


def blocks(items: object) -> str:
    """Block Kit blocks as HTML."""
    return "".join(block(item) for item in items if isinstance(item, dict)) if isinstance(items, list) else ""


def content(payload: dict[str, Any]) -> str:
    """What Slack shows of a message: its blocks, else its text."""
    if isinstance(payload.get("blocks"), list) and payload["blocks"]:
        return blocks(payload["blocks"])
    return mrkdwn(payload.get("text") or "")


# --- the channel -----------------------------------------------------------------------------------


def render_message(
    message: dict[str, Any],
    *,
    bot_name: str,
    replies: list[dict[str, Any]] | None = None,
    parent: dict[str, Any] | None = None,
    in_thread: bool = False,
) -> str:
    """One message as `GET /admin/messages` has it (`payload`, `ts`, `edited`, ...), its thread below it.

    `in_thread`: drawn inside its parent's thread; `parent`: a broadcast reply drawn in the channel.
    """
    when = datetime.fromtimestamp(float(message["ts"]), UTC)
    broadcast = bool(message.get("reply_broadcast"))
    classes = "message" + (" reply" if in_thread else "") + (" broadcast" if broadcast else "")
    label = '<div class="broadcast-label">also sent to the channel</div>' if broadcast else ""
    if broadcast and not in_thread:
        snippet = escape(unescape(str((parent or {}).get("payload", {}).get("text") or "a message"))[:80])
        thread_ts = escape(str(message["thread_ts"]))
        label = (
            f'<div class="broadcast-label">replied to a thread: <a href="#m-{thread_ts}">'
            f"{snippet}</a> · also sent to the channel</div>"
        )
    edited = ' <span class="edited">(edited)</span>' if message.get("edited") else ""
    thread = _thread(replies, bot_name) if replies else ""
    ts = escape(str(message["ts"]))
    via = escape(str(message.get("via", "webhook")))
    anchor = "" if in_thread or broadcast else f' id="m-{ts}"'
    return (
        f'<article class="{classes}"{anchor} data-ts="{ts}" data-via="{via}">'
        f'<div class="avatar">{escape(bot_name[:1].upper() or "?")}</div><div class="main">'
        f'<div class="meta"><span class="author">{escape(bot_name)}</span>'
        f'<time datetime="{when.isoformat()}" title="{when.isoformat()}">{when:%H:%M:%S} UTC</time>'
        f'<span class="via">{via}</span></div>{label}'
        f'<div class="content">{content(message.get("payload") or {})}{edited}</div>{thread}</div></article>'
    )


def _tombstone(thread_ts: str, replies: list[dict[str, Any]], bot_name: str) -> str:
    """A deleted parent whose thread lives on, as Slack keeps it."""
    ts = escape(thread_ts)
    return (
        f'<article class="message deleted" id="m-{ts}" data-ts="{ts}"><div class="avatar">·</div>'
        f'<div class="main"><div class="content">This message was deleted.</div>'
        f"{_thread(replies, bot_name)}</div></article>"
    )


def _thread(replies: list[dict[str, Any]], bot_name: str) -> str:
    """The "N replies" line, then the replies, oldest first, indented under their parent."""
    count = f"{len(replies)} {'reply' if len(replies) == 1 else 'replies'}"
    shown = "".join(render_message(reply, bot_name=bot_name, in_thread=True) for reply in replies)
    return f'<div class="thread"><div class="reply-count">{count}</div>{shown}</div>'


def channel_items(messages: list[dict[str, Any]], bot_name: str) -> list[str]:
    """The channel's messages, newest first, each with its thread; broadcast replies in both places."""
    parents = {m["ts"]: m for m in messages if m.get("thread_ts") in (None, m["ts"])}
    threads: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["ts"] not in parents:
            threads.setdefault(str(message["thread_ts"]), []).append(message)
    items: list[tuple[float, str]] = []
    for ts, message in parents.items():
        replies = sorted(threads.get(ts, []), key=lambda reply: float(reply["ts"]))
        items.append((float(ts), render_message(message, bot_name=bot_name, replies=replies)))
    for thread_ts, replies in threads.items():
        if thread_ts not in parents:
            ordered = sorted(replies, key=lambda reply: float(reply["ts"]))
            items.append((float(thread_ts), _tombstone(thread_ts, ordered, bot_name)))
        for reply in replies:
            if reply.get("reply_broadcast"):
                shown = render_message(reply, bot_name=bot_name, parent=parents.get(thread_ts))
                items.append((float(reply["ts"]), shown))
    return [shown for _, shown in sorted(items, key=lambda item: item[0], reverse=True)]


def render_page(channel_name: str, messages: list[dict[str, Any]], *, bot_name: str) -> str:
    """The Slack-like page of the channel's messages, newest first (unlike Slack: the page reloads
    itself at the top, where the newest then stays in view)."""
    name = escape(channel_name)
    items = "".join(channel_items(messages, bot_name)) or '<p class="empty">No messages yet.</p>'
    count = sum(1 for message in messages if message.get("thread_ts") in (None, message["ts"]))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        f"<title>#{name} · Slack sink</title><style>{PAGE_CSS}</style></head><body>"
        f"<main><header><h1 class='channel-name'>#{name}</h1>"
        f"<p class='note'>{count} message(s), newest first, threads under their parent. "
        f"Refreshes every {REFRESH_SECONDS} s.</p></header>"
        f"<section class='messages'>{items}</section></main></body></html>"
    )


PAGE_CSS = """
body { margin: 0; font: 15px/1.46 -apple-system, "Segoe UI", Lato, Helvetica, Arial, sans-serif;
  color: #1d1c1d; }
header { border-bottom: 1px solid #ddd; padding: 10px 20px; }
.channel-name, .block-header { font-size: 18px; margin: 0; font-weight: 900; }
.note, .via, time, .edited, .block-context, .broadcast-label, .unsupported, .element, .empty {
  color: #616061; font-size: 12px; }
.message { display: flex; gap: 8px; padding: 8px 20px; }
.avatar { flex: none; width: 36px; height: 36px; border-radius: 4px; background: #2bac76; color: #fff;
  font-weight: 900; display: flex; align-items: center; justify-content: center; }
.main { min-width: 0; flex: 1; overflow-wrap: anywhere; }
.meta { display: flex; gap: 6px; align-items: baseline; }
.author { font-weight: 900; }
.block { margin: 4px 0; }
.block-divider { border: 0; border-top: 1px solid #ddd; }
.button { display: inline-block; margin: 4px 8px 0 0; padding: 3px 12px; border: 1px solid #bbb;
  border-radius: 4px; background: #fff; color: #1d1c1d; font-weight: 700; text-decoration: none; }
code, pre { background: #f6f6f6; border: 1px solid #ddd; border-radius: 3px; padding: 0 3px; font-size: 12px }
pre { padding: 8px; white-space: pre-wrap; }
a, .reply-count { color: #1264a3; }
.thread { margin-top: 4px; border-left: 2px solid #e8e8e8; padding-left: 10px; }
.message.reply { padding: 4px 0; }
.deleted .content { color: #616061; font-style: italic; }
"""
