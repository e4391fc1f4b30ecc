"""How one Python process serves every visitor, tuned once in the same way whichever way it was started:
`streamlit run app.py` (the README's quickstart; app.py calls tune() on every script run, which does the work
the first time only) or `python -m explorer serve` (which calls it before the first visitor)."""

from __future__ import annotations

import gc
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.training.runs import RunManager

# One interpreter serves every visitor. CPython gives its lock to a waiting thread only once the holder has
# run this long, and a page gives the lock up at every element it sends (a socket write): at the default 5 ms
# a page waited for it again and again while others computed. Load test with the attacks, alternately (before
# summaries moved out): knob p95 2.40 and 2.38 s at 5 ms, 1.50 and 1.09 s at 0.5 ms.
SWITCH_INTERVAL = 0.0005
SUMMARY_PROCESSES = 2  # new configs' summaries, traced beside the server (two sessions' at once)

def trust_proxies() -> None:
    """Before the web server starts: which peers may set the client's address through X-Forwarded-For.
    uvicorn (under Streamlit) trusts them from 127.0.0.1 by default, so a proxy or tunnel on the same host
    would pass a student's own header through, and every new value would be a fresh quota. Without
    EXPLORER_TRUSTED_PROXY no peer is trusted, loopback included; with it, the loopback proxy the host runs
    is (identity.client_address then counts its own, the last, entry)."""
    trusted = os.environ.get("EXPLORER_TRUSTED_PROXY", "").strip() in ("1", "true", "yes")
    os.environ["FORWARDED_ALLOW_IPS"] = "127.0.0.1,::1" if trusted else ""


_tuned = False
_lock = threading.Lock()


def summary_processes() -> int:
    """EXPLORER_SUMMARY_PROCESSES (0: trace new configs in the server itself, as the CLI does), else 2."""
    text = os.environ.get("EXPLORER_SUMMARY_PROCESSES", "")
    return int(text) if text.isdigit() else SUMMARY_PROCESSES


def tune() -> None:
    """Once per process: start the run manager (queued runs resume now, not at a visit), trace new configs'
    summaries in processes of their own, shorten the interpreter's switch interval, and move what is loaded
    out of the collector's way. Later calls return at once."""
    global _tuned
    with _lock:
        if _tuned:
            return
        _tuned = True
    import explorer.views.charts  # noqa: F401 - with torch, pandas and Plotly: loaded before the freeze below
    from explorer.summary import summarize_in_processes

    server_manager()
    if summary_processes():
        summarize_in_processes(summary_processes())
    sys.setswitchinterval(SWITCH_INTERVAL)
    # what is loaded now lives as long as the server: full collections skip it (their pauses, which stop every
    # page, went from at most 0.38 s to 0.20 s under the load test)
    gc.collect()
    gc.freeze()


_SERVER: RunManager | None = None
_SERVER_LOCK = threading.Lock()


def server_manager() -> RunManager:
    """This server process's run manager, with the quotas, data directory and limits of its environment (the
    EXPLORER_ variables, read when it is made): shared by every session, and made by `python -m explorer
    serve` before the first visitor, so that queued runs resume as soon as a restarted server is up. One that
    was shut down (close_server) is made anew, from the environment as it is then."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None or _SERVER.closed:
            from explorer.training import processes
            from explorer.training.admission import Quotas
            from explorer.training.runs import RunManager

            _SERVER = RunManager(quotas=Quotas.from_env())
            # the first visitor's estimate should not wait seconds for the forkserver to import torch
            threading.Thread(target=processes.warm, name="explorer-warm-forkserver", daemon=True).start()
        return _SERVER


def close_server() -> None:
    """Shut the server's run manager down, if one was made (its runs are recorded as interrupted)."""
    global _SERVER
    with _SERVER_LOCK:
        manager, _SERVER = _SERVER, None
    if manager is not None:
        manager.shutdown()
