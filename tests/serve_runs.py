"""A stand-in for the app's server process in fault tests: it holds a run manager, as the Streamlit server
does, starts the runs named on its command line and then waits to be killed.

    python -m tests.serve_runs HOME DATA_DIR EPOCHS [EPOCHS ...]
"""

import signal
import sys
import time
from pathlib import Path

from explorer import registry
from explorer.training.recipes import TrainSettings
from explorer.training.runs import RunManager

if __name__ == "__main__":  # a forkserver's workers import __main__: keep the work here
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as Streamlit does: stop, then the exit handlers run
    home, data_dir, *epochs = sys.argv[1:]
    manager = RunManager(Path(home), threads=1, data_dir=data_dir)
    for n in epochs:
        print(manager.start("lenet-bn", registry.get("lenet-bn").config,
                            TrainSettings(lr=0.5, epochs=int(n), batch_size=8)), flush=True)
    time.sleep(3600)
