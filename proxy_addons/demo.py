"""``graph-vcr-proxy demo``: the documented create call, replayed through a real proxy.

It starts ``graph-vcr-proxy replay`` on a free loopback port with the bundled cassettes,
sends the documented PUT over HTTPS with httpx trusting the proxy's CA, and shows what a
user would check: the request, the 201 and the validation verdict of both bodies.
"""

from __future__ import annotations

import json
import ssl
import tempfile
from pathlib import Path

import httpx

from proxy_addons import examples
from proxy_addons.launcher import running_proxy
from proxy_addons.routes import parse
from proxy_addons.validation import request_problems, response_problems


def _pretty(body: bytes | str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2)
    except ValueError:
        return body.decode(errors="replace") if isinstance(body, bytes) else body


def run_demo() -> int:
    headers = {**examples.REQUEST_HEADERS, "Authorization": "Bearer demo-token"}
    with (
        tempfile.TemporaryDirectory(prefix="graph-vcr-proxy-demo-") as confdir,
        running_proxy("replay", confdir=Path(confdir)) as proxy,
    ):
        print(f"proxy: {proxy.url} (CA {proxy.ca})\n")
        verify = ssl.create_default_context(cafile=str(proxy.ca))
        with httpx.Client(proxy=proxy.url, verify=verify, timeout=30) as client:
            response = client.put(examples.ME_URL, content=examples.REQUEST_BODY, headers=headers)
    print(f"PUT {examples.ME_URL}")
    for name, value in headers.items():
        print(f"{name}: {value}")
    print(f"\n{examples.REQUEST_BODY}\n")
    print(f"HTTP/1.1 {response.status_code} {response.reason_phrase}")
    for name, value in response.headers.items():
        print(f"{name}: {value}")
    print(f"\n{_pretty(response.content)}\n")

    route = parse("PUT", examples.ME_URL)
    operation = route.operation if route else None
    problems = [("request", p) for p in request_problems(operation, examples.REQUEST_BODY)]
    problems += [
        ("response", p)
        for p in response_problems(operation, response.status_code, response.content)
    ]
    errors = [p for _, p in problems if p.severity == "error"]
    for side, problem in problems:
        print(f"  {side} {problem.severity}: {problem}")
    verdict = "valid" if not errors else f"INVALID ({len(errors)} problems)"
    print(f"validation: request and response {verdict}")
    ok = response.status_code == 201 and not errors
    print("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1
