"""The staff console's static files (`/staff/static/staff.css`, `staff.js`).

Served by a blueprint of their own, outside the console's sign-in guard: the login page needs its
stylesheet before anyone has signed in, and the files hold nothing but styles and the confirmation
script. They are files, not inline `<style>`/`<script>`, so that the console's
Content-Security-Policy (`bot.web`, `style-src 'self'; script-src 'self'`) holds.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint

STATIC = Path(__file__).resolve().parent / "static"


def create_blueprint() -> Blueprint:
    return Blueprint("staff_static", __name__, static_folder=str(STATIC), static_url_path="/staff/static")
