"""Alpha Swarm engine: the headless core (no Streamlit import anywhere in this package)."""

__version__ = "0.1.0"
