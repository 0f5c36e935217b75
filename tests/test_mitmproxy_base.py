"""Which of mitmproxy's own addons our proxies run: those that act with their default options,
and none whose work is switched off unless an option no command of ours sets is given."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mitmproxy import addons, master, options

from proxy_addons.cli import serving
from proxy_addons.cli.launcher import RunningProxy
from proxy_addons.testing import session

# Each default addon the command leaves out, with the options that would switch it on (it
# does nothing while they are at their defaults); an empty tuple: it only offers commands,
# for mitmproxy's own UIs. CommandHistory keeps the console's history file, also UI only.
LEFT_OUT: dict[str, tuple[str, ...]] = {
    "Browser": (),
    "BlockList": ("block_list",),
    "AntiCache": ("anticache",),
    "AntiComp": ("anticomp",),
    "ClientPlayback": ("client_replay",),
    "CommandHistory": (),
    "Comment": (),
    "Cut": (),
    "Export": (),
    "ProxyAuth": ("proxyauth",),
    "ScriptLoader": ("scripts",),
    "ServerPlayback": ("server_replay",),
    "MapRemote": ("map_remote",),
    "MapLocal": ("map_local",),
    "ModifyBody": ("modify_body",),
    "ModifyHeaders": ("modify_headers",),
    "StickyAuth": ("stickyauth",),
    "StickyCookie": ("stickycookie",),
    "Save": ("save_stream_file",),
    "SaveHar": ("hardump",),
    "UpstreamAuth": ("upstream_auth",),
}
# Each default addon that acts only in a proxy mode our proxies never run (a command's mode is
# regular, or reverse for ``simulate --reverse``, which keeps Alt-Svc rewriting).
LEFT_OUT_OUTSIDE_THEIR_MODE = {
    "DnsResolver": "dns",
    "StripDnsHttpsRecords": "dns",
    "UpdateAltSvc": "reverse",
}


def names(addon_list: list[Any]) -> list[str]:
    return [type(addon).__name__ for addon in addon_list]


def defaults_of(addon: Any) -> dict[str, Any]:
    """The options ``addon`` declares, with their defaults."""
    opts = options.Options()
    before = set(opts.keys())

    async def load() -> None:
        master.Master(opts).addons.add(addon)

    asyncio.run(load())
    return {name: opts.default(name) for name in set(opts.keys()) - before}


def test_the_command_runs_every_default_addon_except_those_switched_off_by_default():
    default = names(addons.default_addons())
    ours = names(serving.mitmproxy_base())
    left_out = {*LEFT_OUT, *LEFT_OUT_OUTSIDE_THEIR_MODE}
    assert [name for name in default if name not in left_out] == ours  # same order, too
    assert "Onboarding" in ours and "Block" in ours and "DisableH2C" in ours


LEFT_OUT_ADDONS = [a for a in addons.default_addons() if type(a).__name__ in LEFT_OUT]


@pytest.mark.parametrize("addon", LEFT_OUT_ADDONS, ids=names(LEFT_OUT_ADDONS))
def test_each_addon_left_out_is_off_with_its_default_options(addon):
    defaults = defaults_of(addon)
    switches = LEFT_OUT[type(addon).__name__]
    assert set(switches) <= set(defaults)
    assert {name: defaults[name] for name in switches if defaults[name]} == {}


def test_the_pytest_plugins_proxy_runs_the_same_without_the_ca_page():
    assert names(session.mitmproxy_base()) == [
        name for name in names(serving.mitmproxy_base()) if name != "Onboarding"
    ]


@pytest.mark.e2e
def test_clients_still_get_the_ca_from_mitm_it_through_the_proxy(start_proxy, client_for):
    proxy: RunningProxy = start_proxy("replay")
    answer = client_for(proxy).get("http://mitm.it/cert/pem")
    assert answer.status_code == 200
    assert answer.content == proxy.ca.read_bytes()


def test_only_a_reverse_proxy_rewrites_alt_svc_and_no_proxy_of_ours_runs_dns():
    reverse = names(serving.mitmproxy_base(reverse=True))
    assert "UpdateAltSvc" in reverse and "UpdateAltSvc" not in names(serving.mitmproxy_base())
    assert not {"DnsResolver", "StripDnsHttpsRecords"} & set(reverse)
