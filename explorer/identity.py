"""Who acts on runs, in the two ways the app is run.

- On your own machine (`streamlit run app.py`, the default) the person at the machine and the CLI are one
  owner, OWNER: every run in the data directory is theirs to see, stop, delete and inspect, whichever way
  it was started. "At the machine" means a loopback connection that no proxy forwarded: a laptop reachable
  on a network does not hand its runs to its neighbours, who are visitors as on a class server.
- On a class server (EXPLORER_SHARED=1) every browser is a visitor with runs of its own, known by a random
  token in a cookie (or the login, where the host configured st.login); EXPLORER_ADMINS names the logins or
  visitor ids that may act on every run.

Either way a run's link is a read-only view for whoever has it; acting on a run stays its owner's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Visitor:
    """Who acts on runs. `id` is what runs store as their owner: a hash of a browser's token or a login,
    never a secret and never a URL parameter. An admin (the machine's owner, or named in the server's
    config) may act on any run."""

    id: str
    admin: bool = False
    address: str | None = None  # the network address it comes from, for per-address quotas (None: unknown)


OWNER = Visitor("cli", admin=True)  # the person at the machine and the CLI: one owner ("cli" as runs stored it)
TOKEN = re.compile(r"[0-9a-f]{32}")
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host")


def shared() -> bool:
    """Whether this server hosts a class (EXPLORER_SHARED=1): then nobody is the machine's owner."""
    return os.environ.get("EXPLORER_SHARED", "").strip().lower() in ("1", "true", "yes", "on")


def admins() -> set[str]:
    return {a.strip() for a in os.environ.get("EXPLORER_ADMINS", "").split(",") if a.strip()}


def visitor_id(token: str) -> str:
    """The owner id stored for a browser's secret token: a hash, so the run store never holds the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def at_the_machine(ip: str | None, headers: Mapping[str, str]) -> bool:
    """A browser connected from this machine itself, through no proxy. Streamlit reports a loopback peer's
    address as None (st.context.ip_address), and a remote peer's as its address, which a client cannot
    forge the way it can forge a header; a session without a connection (no headers: AppTest, a script)
    is not at the machine."""
    names = {k.lower() for k in headers}
    if not names or names & set(FORWARDING_HEADERS):
        return False
    if ip is None:
        return True
    try:
        return ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback
    except ValueError:
        return False


def identify(ip: str | None, headers: Mapping[str, str], token: str, login: str | None) -> Visitor:
    """Who a browser is: the machine's owner on a server that is not shared and a connection from the
    machine itself; else its login, else the visitor of its cookie's token (a valid one: see TOKEN)."""
    if not shared() and at_the_machine(ip, headers):
        return OWNER
    if login is None and not valid_token(token):
        raise ValueError("a visitor's token is 32 hexadecimal digits")
    ident = login or visitor_id(token)
    return Visitor(ident, admin=ident in admins(), address=client_address(ip, headers))


def client_address(ip: str | None, headers: Mapping[str, str]) -> str | None:
    """The address a browser comes from: its connection's, or behind a proxy the host vouches for
    (EXPLORER_TRUSTED_PROXY=1) the last address in X-Forwarded-For, the one that proxy wrote (the entries
    before it are whatever the client sent). A header is trusted only then: any client can write one.
    Anonymous identities are free (clear the cookie), addresses are not."""
    if os.environ.get("EXPLORER_TRUSTED_PROXY", "").strip() in ("1", "true", "yes"):
        forwarded = {k.lower(): v for k, v in headers.items()}.get("x-forwarded-for", "")
        nearest = forwarded.split(",")[-1].strip()
        if nearest:
            return nearest[:64]
    return ip or ("loopback" if headers else None)


def valid_token(token: object) -> bool:
    return isinstance(token, str) and TOKEN.fullmatch(token) is not None
