"""``graph-vcr-proxy demo``: the whole story on its own, offline, in a few seconds.

A newcomer should see each thing the tool is for, with a real proxy and a real HTTPS client
(httpx trusting the proxy's CA), not a description of it:

1. replay: the documented create answered from the bundled cassette (201), both bodies
   validated against the models;
2. simulate: the same appointment read with its ETag, updated with a stale ``If-Match``
   (412 ``ErrorIrresolvableConflict``), then with the fresh one (204);
3. a fault: a throttled call answered 429 with ``Retry-After``, retried after that wait to
   success;
4. the exit summaries the two proxies wrote.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from proxy_addons.addons.summary import render
from proxy_addons.cassette import examples
from proxy_addons.cli.launcher import RunningProxy, running_proxy
from proxy_addons.graph.routes import parse
from proxy_addons.graph.validation import request_problems, response_problems

JOIN_URL = examples.ME_URL.replace("virtualAppointment", "getVirtualAppointmentJoinWebUrl")
AUTH = {"Authorization": "Bearer demo-token"}
THROTTLE = "throttle:route=join-url,times=1,retry-after=1"
MAX_ATTEMPTS = 3


@contextmanager
def _client(proxy: RunningProxy) -> Iterator[httpx.Client]:
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    with httpx.Client(proxy=proxy.url, verify=verify, timeout=30) as client:
        yield client


def _show(console: Console, response: httpx.Response, *headers: str) -> None:
    request = response.request
    shown = [f"{name}: {response.headers[name]}" for name in headers if name in response.headers]
    console.print(f"  {request.method} {request.url.path}")
    console.print(f"  -> {response.status_code} {response.reason_phrase}  " + "  ".join(shown))


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "(no Graph error body)"


def replay_step(console: Console, proxy: RunningProxy) -> bool:
    headers = {**examples.REQUEST_HEADERS, **AUTH}
    with _client(proxy) as client:
        response = client.put(examples.ME_URL, content=examples.REQUEST_BODY, headers=headers)
    _show(console, response, "Content-Type", "request-id")
    body = response.json() if response.status_code == 201 else {}
    console.print(
        f"  appointment id {body.get('id')}, join URL {body.get('appointmentClientJoinWebUrl')}"
    )
    route = parse("PUT", examples.ME_URL)
    operation = route.operation if route else None
    problems = [("request", p) for p in request_problems(operation, examples.REQUEST_BODY)]
    problems += [
        ("response", p)
        for p in response_problems(operation, response.status_code, response.content)
    ]
    for side, problem in problems:
        console.print(f"  {side} {problem.severity}: {problem}")
    errors = [p for _, p in problems if p.severity == "error"]
    verdict = "valid" if not errors else f"INVALID ({len(errors)} problems)"
    console.print(f"  validation: request and response {verdict}")
    return response.status_code == 201 and not errors


def etag_step(console: Console, client: httpx.Client) -> bool:
    json_headers = {"Content-Type": "application/json", **AUTH}
    created = client.put(examples.ME_URL, content=examples.REQUEST_BODY, headers=json_headers)
    _show(console, created, "ETag")
    read = client.get(examples.ME_URL, headers=AUTH)
    _show(console, read, "ETag")
    ours = read.headers.get("ETag", "")
    console.print(f"  we keep ETag {ours}; meanwhile a colleague updates the appointment:")
    theirs = client.patch(
        examples.ME_URL,
        json={"externalAppointmentId": "changed-by-a-colleague"},
        headers={**AUTH, "If-Match": ours},
    )
    _show(console, theirs, "ETag")
    console.print(f"  our update with the stale If-Match: {ours}")
    stale = client.patch(
        examples.ME_URL,
        json={"externalAppointmentUrl": "https://example.com/ours"},
        headers={**AUTH, "If-Match": ours},
    )
    _show(console, stale)
    console.print(f"     error code {_error_code(stale)}")
    fresh_tag = client.get(examples.ME_URL, headers=AUTH).headers.get("ETag", "")
    console.print(f"  read again: ETag {fresh_tag}; our update with it:")
    fresh = client.patch(
        examples.ME_URL,
        json={"externalAppointmentUrl": "https://example.com/ours"},
        headers={**AUTH, "If-Match": fresh_tag},
    )
    _show(console, fresh, "ETag")
    return (created.status_code, read.status_code, stale.status_code, fresh.status_code) == (
        201,
        200,
        412,
        204,
    ) and _error_code(stale) == "ErrorIrresolvableConflict"


def retry_after_seconds(response: httpx.Response) -> float:
    """The wait a 429/503 asks for; Graph may send fractions (``2.128``)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def throttle_step(console: Console, client: httpx.Client) -> bool:
    console.print(f"  the proxy runs with --fault {THROTTLE}")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        response = client.get(JOIN_URL, headers=AUTH)
        _show(console, response, "Retry-After")
        if response.status_code != 429:
            break
        wait = retry_after_seconds(response)
        console.print(
            f"     {_error_code(response)}: attempt {attempt}, waiting {wait:g} s as asked"
        )
        time.sleep(wait)
    if response.status_code == 200:
        console.print(f"  join URL: {response.json().get('value')}")
    return response.status_code == 200 and attempt == 2


def _summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def run_demo() -> int:
    # Wide enough for a request line with its status even when stdout is a pipe (rich assumes
    # 80 there); the summaries show only their counted columns, which fit in 80.
    console = Console(highlight=False, soft_wrap=True, width=max(120, Console().width))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="graph-vcr-proxy-demo-") as scratch:
        confdir, replay_json, simulate_json = (
            Path(scratch) / name for name in ("confdir", "replay.json", "simulate.json")
        )
        confdir.mkdir()
        quiet = ("--no-summary", "--summary-json")

        console.rule("1. replay: the documented create, from the bundled cassette")
        with running_proxy("replay", *quiet, str(replay_json), confdir=confdir) as proxy:
            console.print(f"  graph-vcr-proxy replay on {proxy.url}, CA {proxy.ca}")
            replayed = replay_step(console, proxy)

        with running_proxy(
            "simulate", "--fault", THROTTLE, *quiet, str(simulate_json), confdir=confdir
        ) as proxy:
            console.rule("2. simulate: the same appointment, with real ETag / If-Match rules")
            console.print(f"  graph-vcr-proxy simulate on {proxy.url}")
            with _client(proxy) as client:
                etags = etag_step(console, client)
                console.rule("3. a fault: Graph throttles, the client waits and retries")
                throttled = throttle_step(console, client)

        console.rule("4. what the proxies saw (their exit summaries)")
        for name, path in (("replay", replay_json), ("simulate", simulate_json)):
            console.print(f"  graph-vcr-proxy {name}:")
            render(_summary(path), console, counted_only=True)

    ok = replayed and etags and throttled
    steps = {"replay": replayed, "ETag flow": etags, "throttle and retry": throttled}
    console.print(
        "  ".join(f"{name}: {'ok' if passed else 'FAILED'}" for name, passed in steps.items())
    )
    console.print(f"demo: {'OK' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1
