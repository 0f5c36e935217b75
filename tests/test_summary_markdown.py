"""The exit summary as Markdown, merged across runs, and where ``--summary-markdown`` puts it:
rendered by a real Markdown renderer (markdown-it-py), as GitHub renders a job summary."""

from __future__ import annotations

import io
import re
from collections import Counter

from markdown_it import MarkdownIt

from proxy_addons.common import step_summary
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph import run_summary, tokens
from proxy_addons.graph.guidance import Advice
from proxy_addons.graph.least_privilege import Usage, identify
from proxy_addons.graph.routes import Operation
from proxy_addons.graph.summary_markdown import cell, markdown

GFM = MarkdownIt("commonmark").enable("table")


def rendered(text: str) -> str:
    return GFM.render(text)


def headers(html: str) -> list[str]:
    return re.findall(r"<th[^>]*>(.*?)</th>", html)


def cells(html: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", html)


def a_summary(**sections) -> dict:
    routes = {
        "create": Counter({"requests": 3, AnsweredBy.REPLAY: 2, AnsweredBy.FAULT: 1}),
        "get": Counter({"requests": 1, AnsweredBy.MISS: 1, "problems": 1}),
    }
    return run_summary.document(routes, {"throttle": 1}, **sections)


def test_the_summary_renders_as_tables_of_routes_and_faults():
    html = rendered(markdown(a_summary()))
    assert html.count("<table>") == 2
    assert {"create", "get", "<strong>total</strong>", "throttle"} <= set(cells(html))


def test_columns_that_are_zero_in_every_row_are_left_out():
    html = rendered(markdown(a_summary()))
    assert headers(html)[:6] == ["route", "requests", "replay", "miss", "fault", "problems"]


def test_a_run_without_graph_calls_says_so():
    text = markdown(run_summary.document({}, {}))
    assert "No Graph call was seen." in text and "<table>" not in rendered(text)


def test_the_permissions_report_renders_operations_and_tokens():
    usage = Usage()
    token = tokens.token(scopes="OnlineMeetings.ReadWrite User.Read")
    usage.add(Operation.CREATE, identify(f"Bearer {token}"))
    html = rendered(markdown(a_summary(permissions=usage)))
    assert html.count("<table>") == 4
    assert "OnlineMeetings.ReadWrite" in cells(html)
    assert "User.Read" in cells(html)  # beyond what the create needed
    assert token not in html


def test_the_guidance_renders_each_advice_with_what_graph_recommends():
    section = run_summary.guidance_section(Counter({Advice.BETA_URL: 2}), 2)
    html = rendered(markdown(a_summary(guidance=section)))
    assert cells(html)[-3:] == ["beta-url", "2", Advice.BETA_URL.recommendation]


def test_a_cell_can_not_break_the_table_or_inject_html():
    hostile = "a|b\n<script>alert(1)</script> **x** [l](http://e)"
    html = rendered("| h |\n| --- |\n| " + cell(hostile) + " |\n")
    assert "<script>" not in html and "<strong>" not in html and "<a " not in html
    assert html.count("<td>") == 1
    assert "a|b" in html


def test_runs_merge_into_one_summary_with_counts_added():
    one = a_summary()
    usage = Usage()
    usage.add(Operation.GET, None)
    other = a_summary(permissions=usage)
    both = run_summary.merge([one, other])
    assert (both["requests"], both["faults"], both["replayed"]) == (8, {"throttle": 2}, 4)
    assert both["permissions"]["without_token"] == {"get": 1}
    assert "guidance" not in both


def test_a_section_asked_for_is_there_even_when_no_run_carried_it():
    merged = run_summary.merge([], permissions=True, guidance=True)
    text = markdown(merged)
    assert "No operation was called." in text and "Every request did what" in text


def test_a_file_is_replaced_whole(tmp_path):
    target = tmp_path / "summary.md"
    target.write_text("old\n")
    assert step_summary.write(str(target), "new\n", environ={}) == target
    assert target.read_text() == "new\n"


def test_dash_appends_to_the_github_step_summary_never_overwriting_it(tmp_path):
    target = tmp_path / "step_summary"
    target.write_text("## an earlier step\n")
    environ = {step_summary.STEP_SUMMARY: str(target)}
    step_summary.write("-", "## ours\n", environ=environ)
    step_summary.write("-", "## again\n", environ=environ)
    assert target.read_text() == "## an earlier step\n\n## ours\n\n## again\n"


def test_dash_without_a_github_step_summary_prints(tmp_path):
    out = io.StringIO()
    assert step_summary.write("-", "## ours\n", environ={}, stdout=out) is None
    assert out.getvalue() == "## ours\n"


def test_what_an_opaque_token_has_beyond_needed_is_unknown_not_none():
    usage = Usage()
    usage.add(Operation.GET, identify("Bearer opaque"))
    found = cells(rendered(markdown(a_summary(permissions=usage))))
    assert "unknown" in found and "none" not in found
