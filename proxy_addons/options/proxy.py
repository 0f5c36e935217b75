"""The options every proxy mode shares, one table per addon that reads them: the gate's
network policy, the fault injector's rules, the exit summary. In the command line's order."""

from __future__ import annotations

import typing
from collections.abc import Sequence

from proxy_addons.common.option_table import Option
from proxy_addons.graph.traffic import (
    BATCH_CODE,
    BATCH_STATUS,
    BLOCKED_CODE,
    BLOCKED_OTHER_STATUS,
    BLOCKED_STATUS,
)

BLOCK_NETWORK = Option(
    "graph_block_network",
    bool,
    False,
    "Block every host but loopback and graph_allow_hosts: a Graph host gets Graph's "
    f"{BLOCKED_STATUS} {BLOCKED_CODE}, any other a plain {BLOCKED_OTHER_STATUS}, raw TCP "
    "is closed and no upstream connection is opened.",
    flag="--block-network",
    flag_help="block every host but loopback (and --allow-host): a Graph host gets Graph's "
    "403 BlockedByNetworkPolicy, any other a 502, raw TCP is closed (default: traffic that is "
    "not ours passes untouched)",
)
ALLOW_HOSTS = Option(
    "graph_allow_hosts",
    Sequence[str],
    [],
    "Hosts (names or IP addresses) that graph_block_network lets through; loopback always.",
    flag="--allow-host",
    flag_help="a host name or IP address --block-network lets through (repeatable)",
    metavar="HOST",
)
# No flag: each command sets it from its mode (serving.py): record yes, replay only with
# --on-miss forward, simulate never.
FORWARD_OURS = Option(
    "graph_forward_ours",
    bool,
    False,
    "Our Graph operations may go upstream (record; replay with graph_on_miss=forward). "
    f"Off: one no addon answered gets a 500, a $batch holding one gets {BATCH_STATUS} "
    f"{BATCH_CODE}, and raw TCP to a Graph host is closed.",
)
NETWORK_POLICY = (BLOCK_NETWORK, ALLOW_HOSTS, FORWARD_OURS)  # the gate's

FAULT_SPECS = Option(
    "graph_faults",
    Sequence[str],
    [],
    "Fault rules KIND[:key=value,...] for the Graph virtualAppointment routes, tried "
    "in order, e.g. throttle:times=1,retry-after=1 or latency:ms=100-300,rate=0.5.",
    flag="--fault",
    flag_help="inject a fault, KIND[:key=value,...], e.g. throttle:times=1,retry-after=1 "
    "(repeatable; tried in order)",
    metavar="SPEC",
)
FAULTS_FILE = Option(
    "graph_faults_file",
    str,
    "",
    "A YAML list of fault rules (spec strings or mappings with 'kind'), tried before graph_faults.",
    flag="--faults",
    flag_help="a YAML list of fault rules, tried before --fault",
    metavar="FILE",
    path=True,
)
FAULT_SEED = Option(
    "graph_fault_seed",
    typing.Optional[int],  # noqa: UP045 - the form mitmproxy's option parser knows
    None,
    "Seed for rate=, ms=MIN-MAX and latency dist=, so random faults repeat run after run.",
    flag="--seed",
    flag_help="make rate=, ms=MIN-MAX and latency dist= faults repeatable",
    metavar="N",
)
FAULTS = (FAULT_SPECS, FAULTS_FILE, FAULT_SEED)  # the fault injector's

SUMMARY_JSON = Option(
    "graph_summary_json",
    str,
    "",
    "Also write the exit summary as JSON to this file.",
    flag="--summary-json",
    flag_help="write the exit summary as JSON to FILE",
    metavar="FILE",
    path=True,
    session_refusal="the pytest plugin's proxy prints no exit summary; use graph_vcr_proxy.calls",
)
SUMMARY_TABLE = Option(
    "graph_summary",
    bool,
    True,
    "Print a summary table of the Graph calls at exit.",
    flag="--no-summary",
    flag_help="do not print the summary table at exit",
    inverted=True,
)
# The run's reports (issue 20): a test's session can't ask for them, the pytest plugin can.
RUN_REPORT = (
    "the run's reports are the pytest plugin's: --graph-summary-markdown, "
    "--graph-permissions-report, --graph-guidance"
)
SUMMARY_MARKDOWN = Option(
    "graph_summary_markdown",
    str,
    "",
    "Also write the exit summary as GitHub-flavoured Markdown to this file; '-' appends it to "
    "the file $GITHUB_STEP_SUMMARY names (a CI job summary), or prints it when that is unset.",
    flag="--summary-markdown",
    flag_help="write the exit summary as GitHub-flavoured Markdown to FILE; '-' appends it to "
    "the file $GITHUB_STEP_SUMMARY names (a CI job summary), or prints it when unset",
    metavar="FILE",
    path=True,
    session_refusal=RUN_REPORT,
)
PERMISSIONS_REPORT = Option(
    "graph_permissions_report",
    bool,
    False,
    "Add the least-privilege report to the exit summary (table, JSON, Markdown): each "
    "operation's least privileged scope, each token's scopes beyond what its calls needed.",
    flag="--permissions-report",
    flag_help="add the least-privilege report to the exit summary (table, JSON, Markdown): "
    "each operation's least privileged scope, each token's scopes beyond its calls' needs",
    session_refusal=RUN_REPORT,
)
SUMMARY = (SUMMARY_JSON, SUMMARY_MARKDOWN, PERMISSIONS_REPORT, SUMMARY_TABLE)  # the summary's

# A flag with no option: the guidance addon (addons/guidance.py) is on while it is loaded,
# and the command line loads it only with --guidance (each addon in the chain costs every
# request a dispatch).
GUIDANCE_FLAG = Option(
    None,
    bool,
    False,
    "Load the guidance addon.",
    flag="--guidance",
    flag_help="log, per Graph request, what Graph recommends that it did not do "
    "(client-request-id, v1.0 over beta, If-Match on writes, US phone numbers for SMS), "
    "and count it in the exit summary",
    session_refusal=RUN_REPORT,
)

EVERY_MODE = (*NETWORK_POLICY, *FAULTS, *SUMMARY, GUIDANCE_FLAG)
