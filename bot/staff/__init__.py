"""The staff side: the console and its API (console.py), the actions it takes (actions.py)."""
