"""The catalog: every network of d2l chapter 7 with its size at the book's settings."""

import streamlit as st

from explorer.i18n import _
from explorer.views.ui import catalog_table
from pages.common import fit_height, page_setup
from pages.language import use_language

use_language()  # this run's language (app.py sets it first; AppTest's reruns start at the page)
page_setup()
st.title("CNN Explorer")
st.caption(_("The modern CNNs of *Dive into Deep Learning*, chapter 7, trained on Fashion-MNIST."))
table = catalog_table()
st.dataframe(table, hide_index=True, width="stretch", height=fit_height(len(table)),  # every row, no scroll
             column_config={_("description"): st.column_config.TextColumn(width=330)})
