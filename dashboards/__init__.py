"""The engagement dashboard (Streamlit): reads SQL only."""
