"""Slack's mrkdwn, Block Kit and a channel with its threads as HTML, for the Slack sink's page:
what the DAG's messages use (header, section, context, actions with link buttons, divider).

Pure functions, standard library only. Everything they render was posted by someone else and is
hostile data: every piece of it is HTML-escaped, links keep only http(s) and mailto targets, and
attribute values are escaped with their quotes, so nothing posted can add an element or a script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

LINK_SCHEMES = ("http://", "https://", "mailto:")
# The shortcodes the DAG's messages use, and a few more; any other is shown as its :code:.
EMOJI = {
    "alarm_clock": "⏰",
    "bell": "🔔",
    "fire": "🔥",
    "hourglass": "⌛",
    "information_source": "ℹ️",
    "large_green_circle": "🟢",
    "red_circle": "🔴",
    "rotating_light": "🚨",
    "test_tube": "🧪",
    "warning": "⚠️",
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
    """Slack's mrkdwn as HTML: *bold*, _italic_, ~strike~, `code`, ```pre```, > quotes, links,
    mentions and :emoji:, with `&amp;`, `&lt;`, `&gt;` shown as the characters they stand for."""
    holes: list[str] = []

    def hole(rendered: str) -> str:
        holes.append(rendered)
        return f"{_HOLE_START}{len(holes) - 1}{_HOLE_END}"

    source = str(text).replace(_HOLE_START, "\ufffd").replace(_HOLE_END, "\ufffd")
    source = _PREFORMATTED.sub(lambda match: hole(_preformatted(match[1])), source)
    source = _CODE.sub(lambda match: hole(f"<code>{escape(unescape(match[1]))}</code>"), source)
    source = _CONTROL.sub(lambda match: hole(_control(match[1])), source)
    shown = emoji(escape(unescape(source)))
    for pattern, tag in _EMPHASIS:
        shown = pattern.sub(rf"<{tag}>\1</{tag}>", shown)
    shown = _lines(shown.split("\n"))
    return _HOLE.sub(lambda match: holes[int(match[1])], shown)


def _preformatted(body: str) -> str:
    return f"<pre>{escape(unescape(body.strip(chr(10))))}</pre>"


def _lines(lines: list[str]) -> str:
    """Lines joined by `<br>`; a run of lines starting with `>` is one quote."""
    out: list[str] = []
    quoted: list[str] = []
    for line in lines:
        if line.startswith("&gt;"):
            quoted.append(line.removeprefix("&gt;").removeprefix(" "))
            continue
        if quoted:
            out.append(f"<blockquote>{'<br>'.join(quoted)}</blockquote>")
            quoted = []
        out.append(line + "<br>")
    if quoted:
        out.append(f"<blockquote>{'<br>'.join(quoted)}</blockquote>")
    return "".join(out).removesuffix("<br>")


def link(url: str, label: str) -> str:
    """An `<a>` to `url` (already unescaped) when it is http(s) or mailto; else the label alone."""
    if not url.lower().startswith(LINK_SCHEMES):
        return escape(label)
    return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{escape(label)}</a>'


def _control(inner: str) -> str:
    """One `<...>` sequence: a link; anything else (a mention, a date) is shown as its text."""
    target, _, label = inner.partition("|")
    if target.lower().startswith(LINK_SCHEMES):
        url = unescape(target)
        return link(url, unescape(label) or url)
    return escape(f"<{unescape(inner)}>")


# --- Block Kit -------------------------------------------------------------------------------------


def text_object(obj: object) -> str:
    """A composition text object: `mrkdwn` rendered, `plain_text` shown as it is."""
    if isinstance(obj, str):
        return plain(obj)
    if not isinstance(obj, dict):
        return ""
    if obj.get("type") == "mrkdwn":
        return mrkdwn(obj.get("text", ""))
    return plain(obj.get("text", ""))


def element(obj: object) -> str:
    """An element of an `actions` or `context` block."""
    if not isinstance(obj, dict):
        return ""
    kind = obj.get("type")
    if kind in ("mrkdwn", "plain_text"):
        return f"<span>{text_object(obj)}</span>"
    if kind == "button":
        return _button(obj)
    return f'<span class="element">[{escape(str(kind))}]</span>'


def _button(obj: dict[str, Any]) -> str:
    label = text_object(obj.get("text"))
    url = obj.get("url")
    if isinstance(url, str) and url.lower().startswith(LINK_SCHEMES):
        return f'<a class="button" href="{escape(url)}" target="_blank" rel="noopener noreferrer">{label}</a>'
    return f'<button type="button" class="button">{label}</button>'


def _elements(elements: object) -> Iterable[str]:
    return (element(item) for item in elements) if isinstance(elements, list) else ()


def _section(block: dict[str, Any]) -> str:
    text = text_object(block.get("text"))
    return f'<div class="block block-section"><div class="section-text">{text}</div></div>'


_BLOCKS: dict[str, Callable[[dict[str, Any]], str]] = {
    "header": lambda block: f'<div class="block block-header">{text_object(block.get("text"))}</div>',
    "section": _section,
    "context": lambda block: (
        f'<div class="block block-context">{" ".join(_elements(block.get("elements")))}</div>'
    ),
    "actions": lambda block: (
        f'<div class="block block-actions">{"".join(_elements(block.get("elements")))}</div>'
    ),
    "divider": lambda block: '<hr class="block block-divider">',
}


def blocks(items: object) -> str:
    """Block Kit blocks as HTML; a block type this page does not draw says so in its place."""
    out = []
    for block in items if isinstance(items, list) else ():
        if not isinstance(block, dict):
            continue
        draw = _BLOCKS.get(str(block.get("type")))
        kind = escape(str(block.get("type")))
        out.append(draw(block) if draw else f'<div class="block unsupported">[{kind} block]</div>')
    return "".join(out)


def content(payload: dict[str, Any]) -> str:
    """What Slack shows of a message: its blocks, else its text."""
    if isinstance(payload.get("blocks"), list) and payload["blocks"]:
        return blocks(payload["blocks"])
    return mrkdwn(payload.get("text") or "")


# --- the channel -----------------------------------------------------------------------------------


def posted_at(message: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(message["ts"]), UTC)


def _snippet(message: dict[str, Any] | None, limit: int = 80) -> str:
    text = unescape(str((message or {}).get("payload", {}).get("text") or "a message"))
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


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
    payload = message.get("payload") or {}
    author = bot_name
    when = posted_at(message)
    broadcast = bool(message.get("reply_broadcast"))
    classes = ["message"] + (["reply"] if in_thread else []) + (["broadcast"] if broadcast else [])
    label = ""
    if broadcast and in_thread:
        label = '<div class="broadcast-label">also sent to the channel</div>'
    elif broadcast:
        thread_ts = escape(str(message.get("thread_ts")))
        label = (
            f'<div class="broadcast-label">replied to a thread: <a href="#m-{thread_ts}">'
            f"{_snippet(parent)}</a> · also sent to the channel</div>"
        )
    edited = ' <span class="edited">(edited)</span>' if message.get("edited") else ""
    thread = _thread(replies, bot_name) if replies else ""
    ts = escape(str(message["ts"]))
    via = escape(str(message.get("via", "webhook")))
    anchor = "" if in_thread or broadcast else f' id="m-{ts}"'
    return (
        f'<article class="{" ".join(classes)}"{anchor} data-ts="{ts}" data-via="{via}">'
        f'<div class="avatar">{escape(author[:1].upper() or "?")}</div><div class="main">'
        f'<div class="meta"><span class="author">{escape(author)}</span><span class="app">APP</span>'
        f'<time datetime="{when.isoformat()}" title="{when.isoformat()}">{when:%H:%M:%S} UTC</time>'
        f'<span class="via">{via}</span></div>{label}'
        f'<div class="content">{content(payload)}{edited}</div>{thread}</div></article>'
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


def render_page(
    channels: list[dict[str, Any]],
    channel_id: str,
    messages: list[dict[str, Any]],
    *,
    bot_name: str,
    refresh_seconds: int = 5,
) -> str:
    """The Slack-like page: the channels on the left, `channel_id`'s messages (newest first) on the right.

    Newest first, unlike Slack: the page reloads itself at the top, where the newest then stays in view.
    """
    current = next((channel for channel in channels if channel["id"] == channel_id), None)
    sidebar = "".join(
        '<li><a href="/?channel={id}"{current}>#&nbsp;{name}{archived}</a></li>'.format(
            id=escape(channel["id"]),
            current=' class="current"' if channel["id"] == channel_id else "",
            name=escape(channel["name"]),
            archived=" (archived)" if channel.get("is_archived") else "",
        )
        for channel in channels
    )
    name = escape(current["name"]) if current else f"{escape(channel_id)} (no such channel)"
    items = "".join(channel_items(messages, bot_name)) or '<p class="empty">No messages yet.</p>'
    count = sum(1 for message in messages if message.get("thread_ts") in (None, message["ts"]))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{refresh_seconds}'>"
        f"<title>#{name} · Slack sink</title><style>{PAGE_CSS}</style></head><body>"
        f"<nav class='sidebar'><div class='workspace'>Local (Slack sink)</div><ul>{sidebar}</ul></nav>"
        f"<main><header><h1 class='channel-name'>#{name}</h1>"
        f"<p class='note'>{count} message(s), newest first, threads under their parent. "
        f"Refreshes every {refresh_seconds} s.</p></header>"
        f"<section class='messages'>{items}</section></main></body></html>"
    )


PAGE_CSS = """
body { margin: 0; display: flex; min-height: 100vh; font: 15px/1.46 -apple-system, "Segoe UI", Lato,
  Helvetica, Arial, sans-serif; color: #1d1c1d; }
.sidebar { width: 220px; background: #3f0e40; color: #cfc3cf; padding: 12px 0; flex: none; }
.sidebar .workspace { color: #fff; font-weight: 900; padding: 0 16px 12px; }
.sidebar ul { list-style: none; margin: 0; padding: 0; }
.sidebar a { display: block; padding: 4px 16px; color: #cfc3cf; text-decoration: none; }
.sidebar a.current { background: #1164a3; color: #fff; }
main { flex: 1; min-width: 0; }
header { border-bottom: 1px solid #ddd; padding: 10px 20px; }
.channel-name { font-size: 18px; margin: 0; font-weight: 900; }
.note, .via, time { color: #616061; font-size: 12px; margin: 0; }
.messages { padding: 8px 0; }
.empty { padding: 20px; color: #616061; }
.message { display: flex; gap: 8px; padding: 8px 20px; }
.message:hover { background: #f8f8f8; }
.avatar { flex: none; width: 36px; height: 36px; border-radius: 4px; background: #2bac76; color: #fff;
  font-weight: 900; display: flex; align-items: center; justify-content: center; }
.main { min-width: 0; flex: 1; }
.meta { display: flex; gap: 6px; align-items: baseline; }
.author { font-weight: 900; }
.app { background: #e8e8e8; color: #616061; font-size: 10px; font-weight: 700; padding: 0 3px;
  border-radius: 2px; }
.content { overflow-wrap: anywhere; }
.edited { color: #616061; font-size: 12px; }
.block { margin: 4px 0; }
.block-header { font-size: 18px; font-weight: 900; }
.block-context { color: #616061; font-size: 12px; }
.block-divider { border: 0; border-top: 1px solid #ddd; }
.button { display: inline-block; margin: 4px 8px 0 0; padding: 3px 12px; border: 1px solid #bbb;
  border-radius: 4px; background: #fff; color: #1d1c1d; font: inherit; font-size: 13px; font-weight: 700;
  text-decoration: none; }
code { color: #c01343; background: #f6f6f6; border: 1px solid #ddd; border-radius: 3px; padding: 0 3px;
  font-size: 12px; }
pre { background: #f8f8f8; border: 1px solid #ddd; border-radius: 4px; padding: 8px; white-space: pre-wrap;
  font-size: 12px; margin: 4px 0; }
blockquote { margin: 4px 0; padding-left: 10px; border-left: 4px solid #ddd; }
a { color: #1264a3; }
.thread { margin-top: 4px; border-left: 2px solid #e8e8e8; }
.reply-count { color: #1264a3; font-weight: 700; font-size: 13px; padding-left: 10px; }
.message.reply { padding: 4px 10px; }
.broadcast-label { color: #616061; font-size: 12px; }
.deleted .content { color: #616061; font-style: italic; }
.unsupported, .element { color: #616061; font-size: 12px; }
"""
