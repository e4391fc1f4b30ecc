"""A class on one server: the real app under load, spoken to in Streamlit's own websocket protocol (what a
browser tab sends: a rerun with its widgets' values, fragment reruns on the server's timer), so 30 visitors
cost this machine little beside the server itself.

While one visitor's run trains, half the sessions change a knob on Explore every few seconds and half watch
runs on Train (their own queued runs, or the training run through its shared URL); a health check polls all
along, and a new visitor loads the whole first page (HTML, scripts, the page's script run) now and then.

    python -m tests.loadtest [--sessions 30] [--seconds 60] [--attacks]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import os
import random
import re
import signal
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from explorer import registry
from explorer.summary import summarize
from explorer.training.store import RunStore
from explorer.views.tables import human
from tests.browser import COOKIE, streamlit_server
from tests.conftest import write_dataset

EXCEPTIONS: list[str] = []  # every traceback any session of this process was shown
TEXT_FIELDS = {"markdown": "body", "alert": "body", "text": "body", "heading": "body", "progress": "text"}


class Session:
    """One browser tab: a websocket, its widgets by label, and the text of what its last run drew."""

    def __init__(self, url: str, visitor: str, address: str = "10.0.0.1", patience: float = 30.0) -> None:
        self.patience = patience  # seconds the page may send nothing before it is called hung
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.cookie = f"{COOKIE}={visitor}"
        self.address = address  # the class server sits behind the host's proxy, which names the client
        self.widgets: dict[str, str] = {}     # label -> widget id
        self.texts: list[str] = []
        self.metrics: dict[str, str] = {}
        self.exceptions: list[str] = []  # tracebacks any run drew: a visitor must never see one
        self.page, self.query = "explore", ""
        self.page_hash = ""  # what a browser sends once it knows the page, as the server's own reruns use it
        self.timer: tuple[float, str] | None = None  # a fragment's (interval, id), as st.fragment(run_every)

    async def __aenter__(self) -> Session:
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                           additional_headers={"Cookie": self.cookie, "X-Forwarded-For": self.address},
                                           open_timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def open(self, page: str, query: str = "") -> float:
        self.page, self.query, self.page_hash = page, query, ""
        return await self.rerun()

    async def rerun(self, widgets: dict[str, object] | None = None, fragment: str | None = None) -> float:
        """Send what a tab sends and wait for the run to finish; returns the seconds it took."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string, state.page_name, state.page_script_hash = self.query, self.page, self.page_hash
        for label, value in (widgets or {}).items():
            if label not in self.widgets:
                raise LookupError(f"{self.page}?{self.query} drew no {label!r}; it said {self.texts[-6:]}, "
                                  f"exceptions {self.exceptions}")
            w = state.widget_states.widgets.add()
            w.id = self.widgets[label]
            if value is True:
                w.trigger_value = True
            elif isinstance(value, int):
                w.int_value = value
            else:
                w.double_value = value
        if fragment:
            state.fragment_id, state.is_auto_rerun = fragment, True
        else:
            self.texts, self.metrics = [], {}
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        seen = []
        while True:
            f = ForwardMsg()
            try:
                f.ParseFromString(await asyncio.wait_for(self.ws.recv(), timeout=self.patience))
            except TimeoutError:
                raise TimeoutError(f"{self.page}?{self.query} fragment={fragment}: {seen}") from None
            kind = f.WhichOneof("type")
            seen.append((kind, f.script_finished if kind == "script_finished" else ""))
            if kind == "delta" and f.delta.WhichOneof("type") == "new_element":
                self._element(f.delta.new_element)
            elif kind == "navigation":
                self.page_hash = f.navigation.page_script_hash
            elif kind == "page_info_changed":
                self.query = f.page_info_changed.query_string
            elif kind == "auto_rerun":
                self.timer = (f.auto_rerun.interval, f.auto_rerun.fragment_id)
            elif kind == "stop_auto_rerun":
                self.timer = None
            elif kind == "script_finished" and f.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return time.perf_counter() - start

    async def start_training(self, epochs: int) -> None:
        """Wait, as a student does, while the page measures the network (it reruns itself meanwhile), then
        set the epochs and click Start."""
        await self.until_measured()
        await self.rerun({"Epochs": epochs})
        await self.until_measured()
        await self.rerun({"Start training": True})

    async def until_measured(self) -> None:
        while any(t.startswith(("Measuring", "Waiting for")) for t in self.texts):
            await asyncio.sleep(1)
            await self.rerun()

    def _element(self, element) -> None:
        kind = element.WhichOneof("type")
        part = getattr(element, kind)
        if kind in TEXT_FIELDS:
            self.texts.append(getattr(part, TEXT_FIELDS[kind]))
        elif kind == "metric":
            self.metrics[part.label] = part.body
        elif kind == "exception":
            self.exceptions.append(f"{self.page}?{self.query}: {part.type}: {part.message}")
            EXCEPTIONS.append(self.exceptions[-1])
        if getattr(part, "id", "") and getattr(part, "label", ""):
            self.widgets[part.label] = part.id


@dataclass
class Figures:
    health: list[float] = field(default_factory=list)
    knob: list[float] = field(default_factory=list)
    knob_wrong: int = 0
    fragment: list[float] = field(default_factory=list)
    first_page: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    children_rss_mb: list[float] = field(default_factory=list)
    # the attacks, beside the class
    train_urls: list[float] = field(default_factory=list)
    measuring_said: int = 0
    flood_configs: list[float] = field(default_factory=list)
    flood_wrong: int = 0
    inside_views: list[float] = field(default_factory=list)
    flood_accepted: int = 0
    other_address_accepted: bool = False
    train_both_clicks: int = 0
    flipped_cookies: int = 0
    most_per_visitor: int = 0
    most_per_address: int = 0


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else (values or [float("nan")])[0]


async def change_knobs(url: str, visitor: str, address: str, until: float, figures: Figures) -> None:
    """A student on Explore: a new resolution every 1 to 3 s, timed until the page shows its new cost."""
    async with Session(url, visitor, address) as s:
        await s.open("explore", "model=vgg11-small")
        while time.monotonic() < until:
            await asyncio.sleep(random.uniform(1, 3))
            resolution = random.randrange(64, 225)
            figures.knob.append(await s.rerun({"resolution": resolution}))
            if s.metrics.get("mult-adds / image") != _shown("vgg11-small", "mult_adds", resolution=resolution):
                figures.knob_wrong += 1  # the page did not show the new config's figures


@functools.cache
def _shown(name: str, total: str, **changes: object) -> str:
    """A total of `name` with `changes` as the Explore page must show it after the change."""
    config = dataclasses.replace(registry.get(name).config, **changes)
    return human(getattr(summarize(config).totals, total))


async def watch(s: Session, until: float, figures: Figures) -> None:
    """A student on Train watching a run: the live part reruns on the server's timer, as in a browser."""
    while time.monotonic() < until and s.timer:
        await asyncio.sleep(s.timer[0])
        figures.fragment.append(await s.rerun(fragment=s.timer[1]))


async def poll_health(url: str, server_pid: int, until: float, figures: Figures) -> None:
    while time.monotonic() < until:
        start = time.perf_counter()
        await asyncio.to_thread(_get, f"{url}/_stcore/health")
        figures.health.append(time.perf_counter() - start)
        figures.rss_mb.append(_rss_mb(server_pid))
        figures.children_rss_mb.append(_children_rss_mb(server_pid))
        await asyncio.sleep(0.25)


# The attacks of the shared-server issue, each by a student who wants to bring the server down.

async def hostile_train_urls(url: str, until: float, figures: Figures) -> None:
    """Train URLs that cost the most a page may ask: once a network of hundreds of hours, then a new network
    that takes seconds of steps to time every 2 s, each left before its measurement ends (abandoned)."""
    async with Session(url, "d" * 32, "10.6.6.6") as s:
        figures.train_urls.append(await s.open("train", "model=lenet&resolution=256&channels=%5B1024%2C+1024%5D"))
        while time.monotonic() < until:
            resolution = random.randrange(96, 200)
            figures.train_urls.append(await s.open("train", f"model=lenet&resolution={resolution}"
                                                            "&channels=%5B64%2C+256%5D"))
            figures.measuring_said += any(t.startswith(("Measuring", "Waiting for")) for t in s.texts)
            await asyncio.sleep(2)


async def flood_configs(url: str, n: int, until: float, figures: Figures) -> None:
    """Distinct ResNet-18 configs on Explore, back to back, each URL opened as a new tab: every one a new network
    to summarize. (A session keeps its knobs: one that is sent another URL redraws what it shows.)"""
    while time.monotonic() < until:
        channels = sorted(random.sample(range(8, 257), 4))
        async with Session(url, f"{'e' * 24}{n:08x}", "10.6.6.7") as s:
            query = "model=resnet18&channels=%5B" + "%2C+".join(map(str, channels)) + "%5D"
            figures.flood_configs.append(await s.open("explore", query))
            figures.flood_wrong += s.metrics.get("parameters") != _shown("resnet18", "params", channels=tuple(channels))


async def inside_vgg(url: str, n: int, until: float, figures: Figures) -> None:
    """The book's VGG-11 (224 px, 129 M weights) with fresh weights on Inside, a new image each time. Views
    are computed one at a time, niced, beside a run: a tab may wait minutes behind the others' views."""
    async with Session(url, f"{'9' * 24}{n:08x}", f"10.6.7.{n}", patience=300) as s:
        while time.monotonic() < until:
            figures.inside_views.append(await s.open("inside", f"model=vgg11&image={random.randrange(200)}"))


async def cookie_flood(url: str, figures: Figures) -> None:
    """15 identities from one address (a cleared cookie each time), each clicking Start; then a student at
    another address."""
    for i in range(15):
        async with Session(url, f"{'7' * 24}{i:08x}", "10.6.6.8") as s:
            await s.open("train", "model=lenet-bn")
            await s.start_training(1)
            figures.flood_accepted += "run=" in s.query
    async with Session(url, "8" * 32, "10.0.5.1") as s:
        await s.open("train", "model=lenet-bn")
        await s.start_training(1)
        figures.other_address_accepted = "run=" in s.query


async def train_both_loop(url: str, until: float, figures: Figures) -> None:
    """One student clicks a lesson's Train both again and again: their quota (two runs) holds."""
    async with Session(url, "e" * 32, "10.6.8.1") as s:
        await s.open("lessons", "lesson=lenet")
        while time.monotonic() < until:
            await s.rerun({"Train both": True})
            figures.train_both_clicks += 1
            await asyncio.sleep(1.5)


async def cookie_flipper(url: str, until: float, figures: Figures) -> None:
    """One student clears their cookie before every Train both, from one address: the address's quota holds."""
    i = 0
    while time.monotonic() < until:
        async with Session(url, f"{'6' * 24}{i:08x}", "10.6.9.1") as s:
            await s.open("lessons", "lesson=lenet")
            await s.rerun({"Train both": True})
        figures.flipped_cookies += 1
        i += 1
        await asyncio.sleep(1.0)


async def watch_quotas(home: Path, until: float, figures: Figures) -> None:
    """The store, twice a second: the most active runs any one visitor and any one address held at once."""
    store = RunStore(home / "runs.sqlite")
    while time.monotonic() < until:
        active = store.with_status("queued") + store.with_status("running")
        for attr, of in (("most_per_visitor", lambda r: r.owner), ("most_per_address", lambda r: r.address)):
            counts: dict[str, int] = {}
            for r in active:
                counts[of(r)] = counts.get(of(r), 0) + 1
            setattr(figures, attr, max(getattr(figures, attr), *counts.values(), 0))
        await asyncio.sleep(0.5)


async def new_visitors(url: str, until: float, figures: Figures, every: float = 8.0) -> None:
    """A new visitor now and then: the HTML, every script and style it names, then the first page's run."""
    n = 0
    while time.monotonic() < until:
        await asyncio.sleep(every)
        start = time.perf_counter()
        html = (await asyncio.to_thread(_get, url + "/")).decode()
        assets = re.findall(r'(?:src|href)="\.?/?(static/[^"]+)"', html)
        await asyncio.gather(*(asyncio.to_thread(_get, f"{url}/{a}") for a in assets))
        async with Session(url, f"{'f' * 24}{n:08x}", f"10.0.4.{n % 250}") as s:
            await s.open("explore")
        figures.first_page.append(time.perf_counter() - start)
        n += 1


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def helpers(server_pid: int) -> list[int]:
    """The server's helper processes: what its forkservers started (summary and Inside processes, workers)."""
    parents = _parents()
    forkservers = [p for p, parent in parents.items() if parent == server_pid and b"forkserver" in _cmdline(p)]
    return [p for p, parent in parents.items() if parent in forkservers]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def kill_helpers(server_pid: int, until: float, every: float) -> int:
    """SIGKILL every helper process now and then, as an admin or the kernel's OOM killer might: how many."""
    killed = 0
    while time.monotonic() < until - every / 2:
        await asyncio.sleep(every)
        for pid in helpers(server_pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _children_rss_mb(pid: int) -> float:
    """The memory of every process the server started (the forkserver, a run's worker, a measurement, the
    Inside process), all together: what the machine holds beside the server."""
    parents = _parents()
    def descends(p: int) -> bool:
        while p > 1:
            p = parents.get(p, 0)
            if p == pid:
                return True
        return False
    total = 0.0
    for child in (p for p in parents if descends(p)):
        try:
            total += _rss_mb(child)
        except OSError:
            continue
    return total


def _probes(url: str, server_pid: int, changers: int, until: float) -> Figures:
    """The students changing knobs and the health check, timed from a process of their own: a client whose
    interpreter is busy reading everyone else's pages would add its own waits to what it times (a health
    check once took 1.8 s while the server's event loop never lagged more than 0.08 s)."""
    figures = Figures()

    async def probe() -> None:
        await asyncio.gather(
            *(change_knobs(url, f"{'c' * 24}{i:08x}", f"10.0.2.{i}", until, figures) for i in range(changers)),
            poll_health(url, server_pid, until, figures))

    asyncio.run(probe())
    figures.errors = list(EXCEPTIONS)
    return figures


async def run(url: str, server_pid: int, home: Path, sessions: int = 30, seconds: float = 60.0,
              attacks: bool = False, inside_attackers: int = 3) -> dict:
    """The class (and with `attacks`, the attackers beside it) on a class server behind a proxy: each
    student at an address of their own."""
    figures = Figures()
    EXCEPTIONS.clear()
    watchers, changers = sessions // 2, sessions - sessions // 2
    prober = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    # torch imported there before anything is timed
    await asyncio.wrap_future(prober.submit(_shown, "vgg11-small", "mult_adds", resolution=64))
    queued = min(10, watchers)
    # one visitor's long run trains all along
    async with Session(url, "a" * 32, "10.0.0.1") as trainer:
        await trainer.open("train", "model=lenet-bn")
        await trainer.start_training(200)
        training = _run_id(trainer)
        # ten visitors queue a short run each, one after the other, and watch it
        owners = [Session(url, f"{i:032x}", f"10.0.1.{i}") for i in range(1, queued + 1)]
        positions, queued_ids = [], []
        for s in owners:
            await s.__aenter__()
            await s.open("train", "model=lenet-bn")
            await s.start_training(1)
            queued_ids.append(_run_id(s))
            positions.append(next((int(m.group(1)) for t in s.texts
                                   if (m := re.search(r"Queued: position (\d+)", t))), None))
        others = [Session(url, f"{'b' * 24}{i:08x}", f"10.0.3.{i}") for i in range(watchers - queued)]
        for s in others:
            await s.__aenter__()
            await s.open("train", f"run={training}")
        await asyncio.sleep(3)
        store = RunStore(home / "runs.sqlite")
        steps_before = (store.progress(training) or {}).get("step", 0)
        memory_before = _rss_mb(server_pid)
        until = time.monotonic() + seconds
        hostile = [hostile_train_urls(url, until, figures), cookie_flood(url, figures),
                   train_both_loop(url, until, figures), cookie_flipper(url, until, figures),
                   watch_quotas(home, until, figures),
                   *(flood_configs(url, i, until, figures) for i in range(2)),
                   *(inside_vgg(url, i, until, figures) for i in range(inside_attackers))] if attacks else []
        probes = asyncio.wrap_future(prober.submit(_probes, url, server_pid, changers, until))
        await asyncio.gather(*(watch(s, until, figures) for s in owners + others), new_visitors(url, until, figures),
                             *hostile)
        probed = await probes
        prober.shutdown()
        for name in ("health", "knob", "knob_wrong", "rss_mb", "children_rss_mb", "errors"):
            setattr(figures, name, getattr(probed, name))
        memory_after = _rss_mb(server_pid)
        trained = (store.progress(training) or {}).get("step", 0) - steps_before
        for s in owners + others:
            await s.__aexit__()
        await trainer.rerun({"Stop": True})  # the queue moves on: the ten short runs, in order
    deadline = time.monotonic() + 300
    while any(store.get(i).status in ("queued", "running") for i in queued_ids) and time.monotonic() < deadline:
        await asyncio.sleep(1)
    records = [store.get(i) for i in queued_ids]
    figures_out = {
        "sessions": sessions, "seconds": seconds,
        "health_p95_s": p95(figures.health), "health_max_s": max(figures.health),
        "knob_changes": len(figures.knob), "knob_p50_s": statistics.median(figures.knob),
        "knob_p95_s": p95(figures.knob), "knob_wrong": figures.knob_wrong,
        "watcher_refreshes": len(figures.fragment), "refresh_p95_s": p95(figures.fragment),
        "first_page_s": figures.first_page, "training_steps_meanwhile": trained, "server_rss_mb_before": memory_before,
        "server_rss_mb_after": memory_after, "server_rss_mb_max": max(figures.rss_mb),
        "server_rss_mb_half": max(figures.rss_mb[:len(figures.rss_mb) // 2]),
        "children_rss_mb_max": max(figures.children_rss_mb), "queue_positions": positions,
        "queued_statuses": [r.status for r in records],
        "started_in_order": [r.started for r in records] == sorted(r.started or 0 for r in records),
        "exceptions": figures.errors + EXCEPTIONS,
    }
    if attacks:
        figures_out |= {
            "train_url_pages": len(figures.train_urls), "train_url_max_s": max(figures.train_urls),
            "train_url_measuring_said": figures.measuring_said,
            "flood_configs": len(figures.flood_configs), "flood_config_p95_s": p95(figures.flood_configs),
            "flood_wrong": figures.flood_wrong,
            "inside_vgg_views": len(figures.inside_views),
            "inside_vgg_p95_s": p95(figures.inside_views) if figures.inside_views else None,
            "flood_runs_accepted": figures.flood_accepted, "other_address_accepted": figures.other_address_accepted,
            "train_both_clicks": figures.train_both_clicks, "flipped_cookies": figures.flipped_cookies,
            "most_active_per_visitor": figures.most_per_visitor, "most_active_per_address": figures.most_per_address,
        }
    return figures_out


def _run_id(s: Session) -> str:
    return dict(p.split("=", 1) for p in s.query.split("&"))["run"]


CLASS_SERVER = {"EXPLORER_SHARED": "1", "EXPLORER_TRUSTED_PROXY": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--attacks", action="store_true", help="the shared-server issue's attacks beside the class")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        data = write_dataset(Path(tmp) / "data", n_train=512, n_test=200)
        env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": str(data), **CLASS_SERVER}
        with streamlit_server(env, serve=True) as url:
            print(json.dumps(asyncio.run(run(url, url.pid, home, args.sessions, args.seconds, args.attacks)),
                             indent=1))


if __name__ == "__main__":
    main()
