"""The class as one experiment: every shared run as a point, its size or compute against its best test
accuracy, coloured by architecture, with the Pareto front (no run both smaller and more accurate), and its
training time against its accuracy. What was trained and how well, never who."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from explorer import registry
from explorer.i18n import _
from explorer.summary import summarize
from explorer.training.schema import RunRecord
from explorer.views.charts import style
from explorer.views.runviews import describe_config, preset_of
from explorer.views.tables import human

AXES = {"params": "parameters", "mult_adds": "mult-adds per image"}
ACCURACY_RANGE = (0.0, 1.0)  # an accuracy axis ends at 1, wherever the class's runs lie


def board_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run: its architecture, network, preset and config, size and compute, best test accuracy
    and training time. No owner, no name, no id: a student's choice of a name could say who they are."""
    rows = []
    for r in records:
        config = registry.config_from(r.model, r.config)
        totals = summarize(config).totals
        rows.append({"architecture": registry.get(r.model).family, "network": r.model, "preset": preset_of(r),
                     "config": describe_config(r.model, r.config), "params": totals.params,
                     "mult_adds": totals.mult_adds, "best_test_acc": r.best_test_acc, "seconds": r.seconds})
    return pd.DataFrame(rows, columns=["architecture", "network", "preset", "config", "params", "mult_adds",
                                       "best_test_acc", "seconds"])


def pareto_front(table: pd.DataFrame, x: str) -> pd.DataFrame:
    """The runs no other run beats on both counts: fewer `x` (parameters or mult-adds) and a higher accuracy."""
    ordered = table.sort_values([x, "best_test_acc"], ascending=[True, False])
    return ordered[ordered.best_test_acc > ordered.best_test_acc.cummax().shift(fill_value=-1.0)]


def board_chart(table: pd.DataFrame, x: str = "params", height: int = 480) -> go.Figure:
    """Size or compute (log scale) against best test accuracy, a colour per architecture, the front joined."""
    fig = go.Figure()
    for family, runs in table.groupby("architecture", sort=False):
        fig.add_scatter(x=runs[x], y=runs.best_test_acc, mode="markers", name=family, marker={"size": 12},
                        text=runs.network + " " + runs.config + " · " + runs.preset,
                        hovertemplate="%{text}<br>%{x:,}<br>%{y:.3f}<extra></extra>")
    front = pareto_front(table, x)
    fig.add_scatter(x=front[x], y=front.best_test_acc, mode="lines", name=_("Pareto front"), line_shape="hv",
                    line={"color": "#444444", "dash": "dot"}, hoverinfo="skip")
    style(fig, _("The class: {axis} against best test accuracy").format(axis=_(AXES[x])), _(AXES[x]),
          _("best test acc"), height=height)
    fig.update_yaxes(range=ACCURACY_RANGE)
    return fig.update_xaxes(type="log", dtick=1)  # the networks span orders of magnitude


def time_chart(table: pd.DataFrame, height: int = 480) -> go.Figure:
    """Training time (log scale) against best test accuracy, a colour per architecture."""
    fig = go.Figure()
    for family, runs in table.groupby("architecture", sort=False):
        fig.add_scatter(x=runs.seconds, y=runs.best_test_acc, mode="markers", name=family, marker={"size": 12},
                        text=runs.network + " · " + runs.preset, hovertemplate="%{text}<br>%{x:.0f} s<br>"
                        "%{y:.3f}<extra></extra>")
    style(fig, _("Training time against best test accuracy"), _("seconds"), _("best test acc"), height=height)
    fig.update_yaxes(range=ACCURACY_RANGE)
    return fig.update_xaxes(type="log", dtick=1)


def board_display(table: pd.DataFrame) -> pd.DataFrame:
    """The board's table as the page shows it: readable numbers, headers in the page's language."""
    shown = table.assign(params=table.params.map(human), mult_adds=table.mult_adds.map(human),
                         best_test_acc=table.best_test_acc.map("{:.3f}".format),
                         seconds=table.seconds.map(lambda s: "-" if pd.isna(s) else f"{s:.0f}"))
    return shown.rename(columns={c: _(BOARD_COLUMNS[c]) for c in shown.columns})


BOARD_COLUMNS = {"architecture": "architecture", "network": "network", "preset": "preset", "config": "config",
                 "params": "parameters", "mult_adds": "mult-adds per image", "best_test_acc": "best test acc",
                 "seconds": "seconds"}


__all__ = ["AXES", "board_chart", "board_display", "board_table", "pareto_front", "time_chart"]
