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
SUMMARY = (SUMMARY_JSON, SUMMARY_TABLE)  # the summary's

EVERY_MODE = (*NETWORK_POLICY, *FAULTS, *SUMMARY)
