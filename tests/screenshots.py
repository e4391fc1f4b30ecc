"""The README's screenshots, from real Fashion-MNIST runs: train them, start the app on them, shoot each page at
a projector's 1280x720 in Debian's Chromium.

    python -m tests.screenshots [--out docs] [--data-dir /usr/share/datasets/fashion-mnist]

Takes about three minutes on a 2-core CPU. Run it whenever the pages change.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from explorer import lessons
from explorer.identity import OWNER
from explorer.training.recipes import preset
from explorer.training.runs import RunManager
from tests.browser import ROOT, chromium_page, streamlit_server, wait_idle
from tests.conftest import DEBIAN_DATA


def train(manager: RunManager, name: str, kind: str, label: str) -> str:
    chosen = preset(name, kind)
    return manager.start(name, chosen.config, chosen.settings, OWNER, preset=kind, name=label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--data-dir", default=str(DEBIAN_DATA))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="explorer-screens-"))
    manager = RunManager(home, data_dir=args.data_dir)
    done = train(manager, "lenet-bn", "quick", "LeNet-BN, quick")
    print(f"training {done} on {args.data_dir}", flush=True)
    pair = lessons.queue_pair(manager, lessons.get("resnet"), OWNER)  # 7.6's pair: residual against plain
    for run_id in (done, *pair):
        assert manager.wait(run_id, timeout=600).status == "done"
    manager.shutdown()
    env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": args.data_dir}
    with streamlit_server(env) as url, chromium_page() as page:
        def shoot(path: str, name: str, settle: int = 1500, at: str = "") -> None:
            page.goto(url + path)
            wait_idle(page)
            if at:  # a part below the first screen: scrolled to the top of the view
                page.get_by_text(at, exact=True).first.evaluate("e => e.scrollIntoView()")
            page.wait_for_timeout(settle)  # Plotly draws after the script run ends
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"wrote {out / name}.png", flush=True)

        shoot("/?model=resnet34&view=Diagram", "explore-diagram")
        shoot(f"/runs?run={done}", "runs")
        shoot(f"/inside?run={done}&image=40", "inside")
        lesson = f"/lessons?lesson=resnet&run={pair[0]}&vs={pair[1]}"
        shoot(lesson, "lesson")
        shoot(lesson, "lesson-dynamics", settle=2500, at="Inside the training: each layer, report by report")
        shoot("/?model=resnet34&view=Diagram&lang=zh", "zh-explore-diagram")
        shoot(f"{lesson}&lang=zh", "zh-lesson")
        live = RunManager(home, data_dir=args.data_dir, adopt_queued=False)
        running = train(live, "resnet18", "fast", "ResNet-18, fast")
        time.sleep(25)  # into its second epoch: a test accuracy point and a curve
        shoot(f"/train?run={running}", "train-live", settle=2500)
        live.stop(running)
        live.wait(running, timeout=60)
        live.shutdown()


if __name__ == "__main__":  # a forkserver's workers import __main__: keep the work here
    main()
