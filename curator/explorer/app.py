"""Streamlit entry script of ``curator visualize``.

Run by the CLI as ``streamlit run app.py -- PROJECT`` (the project also comes in through
$CURATOR_PROJECT, which tests set). It loads the cached project data, registers the pages from
``pages/`` and runs the chosen one.
"""

import streamlit as st

from curator.errors import CuratorError
from curator.explorer import page_path, ui
from curator.explorer.compare_view import compare_root

st.set_page_config(page_title="curator explorer", page_icon=ui.page_icon(), layout="wide")

try:
    data = ui.data()
except ui.damaged_errors() as exc:
    st.error(ui.damaged_message(exc), icon=":material/error:")
    st.stop()
except CuratorError as exc:
    st.error(ui.md(exc))
    st.stop()

ui.PAGES.clear()
ui.PAGES.update(
    {
        "overview": st.Page(str(page_path("overview")), title="Overview", icon=":material/dashboard:", default=True),
        "data_quality": st.Page(str(page_path("data_quality")), title="Data Quality", icon=":material/image_search:", url_path="data-quality"),
        "label_quality": st.Page(str(page_path("label_quality")), title="Label Quality", icon=":material/label:", url_path="label-quality"),
        "tags": st.Page(str(page_path("tags")), title="Tags & Export", icon=":material/sell:", url_path="tags"),
    }
)
if compare_root() is not None:  # curator visualize A --compare B
    ui.PAGES["compare"] = st.Page(str(page_path("compare")), title="Compare", icon=":material/compare:", url_path="compare")
page = st.navigation(list(ui.PAGES.values()))
ui.chrome(data)
try:
    page.run()
except ui.damaged_errors() as exc:  # e.g. tags read from a database damaged while the explorer runs
    st.error(ui.damaged_message(exc), icon=":material/error:")
