"""gunicorn's settings for the web app: `gunicorn -c python:bot.gunicorn_conf 'bot.web:create_app()'`.

The Procfile and `hwbot bench` start gunicorn with it. Its master checks the settings and the office
profiles once, before it forks any worker: a bad variable or a broken profile is then one error line
in gunicorn's log per problem (naming the variable, or the file and the field) and gunicorn exits with
status 4 (its "app failed to load"), instead of every worker printing a traceback that buries the
cause and the master giving up later with "Worker failed to boot". With `REDIS_URL` set it also
checks that Redis holds no data of an older key layout (which `hwbot store migrate` moves), on a client
it closes before forking; otherwise the master opens no Redis: the workers connect after the fork (and
the embedded server is not started twice).
"""

from __future__ import annotations

import sys
from typing import Any


def on_starting(server: Any) -> None:
    """gunicorn hook, in the master before the workers: stop start-up on a configuration error."""
    from bot.errors import HwbotError
    from bot.profiles import load_offices
    from bot.settings import load_settings

    try:
        settings = load_settings()
        load_offices(settings.profiles_dir)
        if settings.redis_url:
            from bot.store import connect
            from bot.store.migrate import require_current_layout

            client = connect(settings)
            try:
                require_current_layout(client)
            finally:
                client.close()
    except HwbotError as exc:
        for line in str(exc).splitlines():
            server.log.error("hwbot cannot start: %s", line)
        if server.pidfile is not None:
            server.pidfile.unlink()
        sys.exit(server.APP_LOAD_ERROR)

