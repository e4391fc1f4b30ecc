"""CNN Explorer: the entry point. Streamlit's navigation over the page files in pages/."""

import streamlit as st

st.set_page_config(page_title="CNN Explorer", page_icon="🧠", layout="wide")
st.navigation([
    st.Page("pages/catalog.py", title="Catalog", icon="📚", default=True),
]).run()
