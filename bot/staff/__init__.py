"""The staff side (an edge layer): notices and the outbox worker (notify.py, worker.py), the console and
its actions (console.py, actions.py, export.py), and the scheduled after-booking tasks (aftercare.py)."""
