"""The documented create call, replayed through a real proxy over HTTPS."""

from __future__ import annotations

import json

from proxy_addons import examples


def test_documented_create_is_replayed_with_201_and_documented_body(start_proxy, client_for):
    proxy = start_proxy("replay")
    response = client_for(proxy).put(
        examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS
    )
    assert response.status_code == 201
    assert response.json() == json.loads(examples.RESPONSE_BODY)
