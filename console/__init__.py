"""The operator console (Streamlit). Run from the repository root: `streamlit run console/app.py`."""
