"""CNN Explorer: the entry point. Streamlit's navigation over the page files in pages/."""

from pathlib import Path

import streamlit as st

ICON = str(Path(__file__).parent / "assets" / "icon.png")  # served by the app itself: no font CDN, works offline
# presentation mode (?present=1, a lecturer's bookmark) opens with the editor out of the way
st.set_page_config(page_title="CNN Explorer", page_icon=ICON, layout="wide",
                   initial_sidebar_state="collapsed" if st.query_params.get("present") == "1" else "auto")
st.navigation([
    st.Page("pages/explore.py", title="Explore", icon=":material/search:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
    st.Page("pages/inside.py", title="Inside", icon=":material/visibility:"),
    st.Page("pages/lessons.py", title="Lessons", icon=":material/school:"),
    st.Page("pages/catalog.py", title="Catalog", icon=":material/menu_book:"),
]).run()
