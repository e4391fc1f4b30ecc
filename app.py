"""CNN Explorer: the entry point. Streamlit's navigation over the page files in pages/, in the visitor's
language (explorer.i18n: the URL's lang, the sidebar's switch, else the browser's)."""

from pathlib import Path

import streamlit as st

from explorer import server
from explorer.i18n import _
from pages.language import language_switch, use_language

ICON = str(Path(__file__).parent / "assets" / "icon.png")  # served by the app itself: no font CDN, works offline
# presentation mode (?present=1, a lecturer's bookmark) opens with the editor out of the way
st.set_page_config(page_title="CNN Explorer", page_icon=ICON, layout="wide",
                   initial_sidebar_state="collapsed" if st.query_params.get("present") == "1" else "auto")
server.tune()  # once per process, as `python -m explorer serve` does it
use_language()
explore = st.Page("pages/explore.py", title=_("Explore"), icon=":material/search:", url_path="explore")
page = st.navigation([
    # the root opens Explore at its own name, so that /explore, typed or bookmarked, is a page, not "Page not found"
    st.Page(lambda: st.switch_page(explore, query_params=st.query_params.to_dict()), title=_("Explore"),
            url_path="home", default=True, visibility="hidden"),
    explore,
    st.Page("pages/compare.py", title=_("Compare"), icon=":material/compare_arrows:"),
    st.Page("pages/train.py", title=_("Train"), icon=":material/model_training:"),
    st.Page("pages/runs.py", title=_("Runs"), icon=":material/history:"),
    st.Page("pages/inside.py", title=_("Inside"), icon=":material/visibility:"),
    st.Page("pages/lessons.py", title=_("Lessons"), icon=":material/school:"),
    st.Page("pages/exercises.py", title=_("Exercises"), icon=":material/assignment:"),
    st.Page("pages/board.py", title=_("Class board"), icon=":material/scatter_plot:"),
    st.Page("pages/catalog.py", title=_("Catalog"), icon=":material/menu_book:"),
])
language_switch()
page.run()
