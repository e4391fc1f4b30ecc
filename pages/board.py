"""Class board: every run its owner shared, as one experiment (an admin sees every run with a result)."""

import streamlit as st

from explorer.i18n import _
from explorer.views.board import AXES, board_chart, board_display, board_table, time_chart
from explorer.views.tables import csv_text
from pages.common import fit_height, page_context, page_setup

manager, me = page_context()[:2]
with st.sidebar:
    axis = st.radio(_("Size"), list(AXES), format_func=lambda a: _(AXES[a]), key="b.axis", horizontal=True)
page_setup()

st.title(_("Class board"))
records = manager.board(me)
st.caption(_("Every run with a result in this data directory.") if me.admin else
           _("The runs their owners shared with the class (Runs: Share with the class), without their names."))
if not records:
    st.info(_("No shared runs yet: share one of yours on the Runs page."))
    st.stop()
table = board_table(records)
size, time = st.columns(2)
size.plotly_chart(board_chart(table, axis), key="b.size")
time.plotly_chart(time_chart(table), key="b.time")
st.download_button(_("The board (CSV)"), csv_text(table), file_name="class-board.csv", mime="text/csv")
st.dataframe(board_display(table), hide_index=True, width="stretch", height=fit_height(len(table), 400))
