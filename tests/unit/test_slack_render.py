"""dev/slack_render.py: Slack's mrkdwn and Block Kit as HTML, and posted data never as markup."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dev import slack_render
from dev.slack_render import blocks, channel_items, mrkdwn, render_page

# What the renderer itself writes; anything else in its output came from posted data.
OWN_TAGS = {"a", "br", "button", "code", "del", "div", "em", "hr", "pre", "span", "strong"}
OWN_ATTRIBUTES = {"class", "href", "target", "rel", "type", "style"}


def assert_only_own_markup(fragment: str) -> None:
    parser, tags = HTMLParser(), []
    parser.handle_starttag = lambda tag, attrs: tags.append((tag, dict(attrs)))
    parser.feed(fragment)
    parser.close()
    for tag, attributes in tags:
        assert tag in OWN_TAGS, f"<{tag}> in {fragment!r}"
        assert set(attributes) <= OWN_ATTRIBUTES, f"{attributes} in {fragment!r}"
        href = attributes.get("href")
        assert href is None or href.startswith(slack_render.LINK_SCHEMES), fragment


@pytest.mark.parametrize(
    ("source", "html"),
    [
        ("*bold* _italic_ ~strike~", "<strong>bold</strong> <em>italic</em> <del>strike</del>"),
        ("*bold with _italic_ inside*", "<strong>bold with <em>italic</em> inside</strong>"),
        ("a `code *not bold*` b", "a <code>code *not bold*</code> b"),
        ("```line 1\n*line* 2```", "<pre>line 1\n*line* 2</pre>"),
        (
            "see <https://example.com/a?b=1&amp;c=2|the docs>",
            'see <a href="https://example.com/a?b=1&amp;c=2"',
        ),
        ("<https://example.com>", ">https://example.com</a>"),
        ("<!channel> <@U123|ana>", "&lt;!channel&gt; &lt;@U123|ana&gt;"),
        ("&lt;b&gt; &amp; &amp;lt;", "&lt;b&gt; &amp; &amp;lt;"),
        (":rotating_light: :no_such_emoji:", "🚨 :no_such_emoji:"),
        ("one\ntwo", "one<br>two"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
        ("* not bold * and _ not italic _", "* not bold * and _ not italic _"),
    ],
    ids=lambda value: value if len(value) < 40 else value[:37] + "...",
)
def test_mrkdwn_renders_like_slack(source: str, html: str) -> None:
    assert html in mrkdwn(source)


@pytest.mark.parametrize(
    ("source", "shown", "absent"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;", "<script"),
        ("&lt;img src=x onerror=alert(1)&gt;", "&lt;img src=x onerror=alert(1)&gt;", "<img"),
        ("<javascript:alert(1)|click>", "&lt;javascript:alert(1)|click&gt;", "href"),
        ('<https://x.example/" onmouseover="alert(1)|y>', "&quot; onmouseover=&quot;", '" onmouseover'),
        ('<https://x.example/|"><b>x</b>>', "&lt;b&gt;x&lt;/b&gt;", "<b>"),
        ("`</code><script>`", "<code>&lt;/code&gt;&lt;script&gt;</code>", "<script"),
        ("*<b>*", "<strong>&lt;b&gt;</strong>", "<b>"),
        ("\ue0000\ue001 <!channel>", "\ufffd0\ufffd", "\ue000"),
    ],
    ids=["script", "entities", "javascript-link", "attribute-quote", "label", "code", "bold", "placeholder"],
)
def test_posted_markup_is_shown_never_run(source: str, shown: str, absent: str) -> None:
    rendered = mrkdwn(source)
    assert shown in rendered and absent not in rendered
    assert_only_own_markup(rendered)


MARKUP_CHARACTERS = st.sampled_from([*"<>&|*_~`!@#:\"'=/; \n", "&lt;", "&gt;", "&amp;", "http://", "\ue000"])


@given(st.lists(st.one_of(MARKUP_CHARACTERS, st.text(max_size=3)), max_size=40).map("".join))
def test_no_posted_text_makes_markup_of_its_own(source: str) -> None:
    assert_only_own_markup(mrkdwn(source))
    assert_only_own_markup(blocks([{"type": "header", "text": {"type": "plain_text", "text": source}}]))


HEADER = {"type": "header", "text": {"type": "plain_text", "text": ":x: Cleanup <failed> *now*"}}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*3* cleanups"}}
CONTEXT = {"type": "context", "elements": [{"type": "mrkdwn", "text": "run `manual__1`"}]}
BUTTONS = {
    "type": "actions",
    "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
        for label, url in [("Open", "https://a.example/r?x=1&y=2"), ("Evil", "javascript:alert(1)")]
    ],
}


def test_blocks_render_header_section_context_actions_and_divider() -> None:
    rendered = blocks([HEADER, SECTION, CONTEXT, {"type": "divider"}, BUTTONS])
    assert '<div class="block block-header">❌ Cleanup &lt;failed&gt; *now*</div>' in rendered
    assert '<div class="section-text"><strong>3</strong> cleanups</div>' in rendered
    assert '<div class="block block-context"><span>run <code>manual__1</code></span></div>' in rendered
    assert '<hr class="block block-divider">' in rendered
    assert '<a class="button" href="https://a.example/r?x=1&amp;y=2"' in rendered
    assert '<button type="button" class="button">Evil</button>' in rendered, "no javascript: link"
    assert_only_own_markup(rendered)


def test_odd_or_hostile_blocks_are_drawn_safely() -> None:
    # fmt: off
    rendered = blocks([
        {"type": "video", "title": "<b>x</b>"}, {"type": "<img src=x onerror=alert(1)>"}, "not a block", None,
        {"type": "section", "text": "<b>a string, not an object</b>"},
        {"type": "actions", "elements": "not a list"},
        {"type": "context", "elements": [{"type": "<b>", "alt_text": "<b>"}, 5, None]},
    ])
    # fmt: on
    assert "[video block]" in rendered and "[&lt;b&gt;]" in rendered
    assert "<b>" not in rendered and "<img" not in rendered
    assert_only_own_markup(rendered)


def test_content_is_the_blocks_else_the_text() -> None:
    assert slack_render.content({"text": "*only* text"}) == "<strong>only</strong> text"
    assert "fallback" not in slack_render.content({"text": "fallback", "blocks": [HEADER]})


def message(ts: str, text: str, thread_ts: str | None = None, **extra: object) -> dict:
    """A message as `GET /admin/messages` has it."""
    return {"ts": ts, "payload": {"text": text}, "thread_ts": thread_ts, "via": "api", **extra}


def test_channel_shows_threads_under_their_parent_and_broadcasts_twice() -> None:
    messages = [
        message("100.000001", "first parent", edited=True),
        message("100.000002", "second parent"),
        message("100.000003", "reply one", "100.000001"),
        message("100.000004", "reply two, broadcast", "100.000001", reply_broadcast=True),
    ]
    items = channel_items(messages, "bot")
    # Newest first: the broadcast, then the second parent, then the first with its thread.
    broadcast, second, thread = items
    assert ["reply two" in broadcast, "second parent" in second, "first parent" in thread] == [True] * 3
    assert all(
        text in broadcast for text in ["replied to a thread: ", "first parent", "also sent to the channel"]
    )
    assert "2 replies" in thread and "(edited)" in thread
    [orphan] = channel_items(messages[2:3], "bot")  # its parent deleted
    assert "This message was deleted." in orphan and "1 reply" in orphan and "reply one" in orphan
    assert thread.index("first parent") < thread.index("reply one") < thread.index("reply two")
    assert thread.count("also sent to the channel") == 1


def test_page_names_the_channel_and_escapes_what_it_is_given() -> None:
    page = render_page("<script>x</script>", [message("100.000001", "hello")], bot_name="<i>me</i>")
    assert "<h1 class='channel-name'>#&lt;script&gt;x&lt;/script&gt;</h1>" in page and "<script" not in page
    assert "&lt;i&gt;me&lt;/i&gt;" in page and "hello" in page
    assert "http-equiv='refresh' content='5'" in page
    assert "No messages yet." in render_page("c", [], bot_name="b")
