"""The catalog: every network of d2l chapter 7 with its size at the book's settings."""

import streamlit as st

import pages.common  # noqa: F401  (routes a first visit through app.py's navigation)
from explorer.ui import catalog_table

st.title("CNN Explorer")
st.caption("The modern CNNs of *Dive into Deep Learning*, chapter 7, trained on Fashion-MNIST.")
st.dataframe(catalog_table(), hide_index=True, width="stretch")
