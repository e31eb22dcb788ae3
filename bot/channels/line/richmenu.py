"""The rich menu (予約する / 予約の確認・キャンセル / ヘルプ / 言語), defined here and installed by `hwbot richmenu install`.

The image is bot/channels/line/assets/richmenu.png (drawn by tools/make_richmenu_image.py). Each area
posts back the same data as the dialog's buttons (`command_option`), so the dialog treats both alike;
言語 / Language asks which language (`*|lang|`), in any state. The menu is the channel's default, one for
every user, so it is installed in Japanese; its language area is labelled in Japanese and English.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, MessagingApiBlob, RichMenuRequest

from bot.channels.line.api import LineApiError
from bot.dialog import texts as T
from bot.dialog.buttons import command_option

IMAGE = Path(__file__).resolve().parent / "assets" / "richmenu.png"
WIDTH, HEIGHT = 2500, 843
DEFAULT_API_HOST = "https://api.line.me"
DEFAULT_DATA_HOST = "https://api-data.line.me"

# The dialog command of each area, left to right; the label shown when tapped is the command's
# (texts.COMMANDS, except 予約の確認, texts.RICHMENU_BOOKINGS, which says that cancelling is there too).
AREAS = ["book", "bookings", "help", "language"]


def rich_menu() -> dict[str, Any]:
    """The rich menu object (LINE's RichMenuRequest): three equal areas over the image."""
    cell = WIDTH // len(AREAS)
    areas = []
    for index, command in enumerate(AREAS):
        label = T.RICHMENU_BOOKINGS if command == "bookings" else T.COMMANDS[command]
        data = command_option(command).data
        width = cell if index < len(AREAS) - 1 else WIDTH - cell * index
        areas.append(
            {
                "bounds": {"x": index * cell, "y": 0, "width": width, "height": HEIGHT},
                "action": {"type": "postback", "label": label[:20], "data": data, "displayText": label},
            }
        )
    return {
        "size": {"width": WIDTH, "height": HEIGHT},
        "selected": True,
        "name": "hwbot main menu",
        "chatBarText": T.RICHMENU_BAR,
        "areas": areas,
    }


def data_host_for(api_host: str) -> str:
    """Images go to api-data.line.me; a stand-in host (simulator, tests) receives both."""
    return DEFAULT_DATA_HOST if api_host.rstrip("/") == DEFAULT_API_HOST else api_host.rstrip("/")


def install(api_host: str, access_token: str, image: Path = IMAGE) -> str:
    """Create the menu, upload its image and make it every user's default; returns its id."""
    try:
        with ApiClient(Configuration(host=api_host, access_token=access_token)) as client:
            created = MessagingApi(client).create_rich_menu(RichMenuRequest.from_dict(rich_menu()))
            menu_id = created.rich_menu_id
            with ApiClient(Configuration(host=data_host_for(api_host), access_token=access_token)) as data:
                MessagingApiBlob(data).set_rich_menu_image(
                    menu_id, body=image.read_bytes(), _headers={"Content-Type": "image/png"}
                )
            MessagingApi(client).set_default_rich_menu(menu_id)
    except OSError as exc:
        raise LineApiError(f"cannot read the rich menu image {image}: {exc.strerror}") from exc
    except Exception as exc:  # ApiException, connection errors
        raise LineApiError(f"installing the rich menu failed: {getattr(exc, 'status', None) or exc.__class__.__name__}") from exc
    return menu_id
