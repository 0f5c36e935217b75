"""The match rule as the options say (``options.cassette.MATCH_RULE``): one function for
replay and the recorder, which both replay a cassette."""

from __future__ import annotations

from mitmproxy import ctx, exceptions

from proxy_addons.cassette.match_rule import MatchRule, MatchRuleError, parse_matcher_option
from proxy_addons.options.cassette import MATCH_RULE

MATCH_OPTIONS = tuple(row.name for row in MATCH_RULE)


def match_rule(*, match_body: bool = True) -> MatchRule:
    """The rule the options say; OptionsError (one line) for one that can't be made
    (an unknown name, a path outside the subset, a matcher that does not import)."""
    opts = ctx.options
    try:
        matchers = [parse_matcher_option(spec) for spec in opts.graph_matchers]
        return MatchRule.of(
            opts.graph_match_on, opts.graph_ignore_json_paths, matchers, match_body=match_body
        )
    except MatchRuleError as exc:
        raise exceptions.OptionsError(str(exc)) from None
