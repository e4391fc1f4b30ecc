"""Who a browser is: the machine's owner over loopback, else a visitor with the address it comes from."""

import pytest

from explorer.identity import OWNER, client_address, identify, visitor_id

TOKEN = "ab" * 16
BROWSER = {"host": "127.0.0.1:8501", "user-agent": "Chromium"}


def test_a_loopback_browser_through_no_proxy_is_the_machines_owner(monkeypatch):
    monkeypatch.delenv("EXPLORER_SHARED", raising=False)
    assert identify(None, BROWSER, TOKEN, None) is OWNER  # Streamlit reports loopback as no address
    assert identify("127.0.0.1", BROWSER, TOKEN, None) is OWNER
    assert identify("::1", BROWSER, TOKEN, None) is OWNER
    neighbour = identify("192.0.2.10", BROWSER, TOKEN, None)  # a laptop reachable on a network
    assert neighbour.id == visitor_id(TOKEN) and not neighbour.admin and neighbour.address == "192.0.2.10"
    proxied = identify(None, {**BROWSER, "X-Forwarded-For": "198.51.100.4"}, TOKEN, None)  # a local proxy
    assert proxied is not OWNER and not proxied.admin
    assert identify(None, {}, TOKEN, None) is not OWNER  # no connection at all (AppTest, a script)


def test_a_class_server_has_no_owner_and_admins_by_name(monkeypatch):
    monkeypatch.setenv("EXPLORER_SHARED", "1")
    monkeypatch.setenv("EXPLORER_ADMINS", "teacher@example.edu")
    assert identify(None, BROWSER, TOKEN, None) is not OWNER
    assert identify(None, BROWSER, TOKEN, "teacher@example.edu").admin
    with pytest.raises(ValueError):
        identify("192.0.2.10", BROWSER, "not-a-token", None)


def test_a_forwarded_address_is_trusted_only_behind_a_proxy_the_host_names(monkeypatch):
    # the student wrote the first entry; the host's proxy appended the address it saw the student at
    headers = {**BROWSER, "X-Forwarded-For": "198.51.100.99, 203.0.113.7"}
    monkeypatch.delenv("EXPLORER_TRUSTED_PROXY", raising=False)
    assert client_address("10.0.0.1", headers) == "10.0.0.1"  # any client can write the header
    monkeypatch.setenv("EXPLORER_TRUSTED_PROXY", "1")
    assert client_address("10.0.0.1", headers) == "203.0.113.7"  # only the nearest proxy's entry counts
    assert client_address(None, BROWSER) == "loopback" and client_address(None, {}) is None
