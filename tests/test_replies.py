"""Graph-shaped answers: what every answer carries."""

from __future__ import annotations

import uuid

from proxy_addons.graph.replies import new_request_id


def test_request_ids_are_fresh_random_version_4_guids():
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, request_id)
