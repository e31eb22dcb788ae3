"""Draw the rich menu image (bot/channels/line/assets/richmenu.png), committed to the repo.

Not needed at run time. Re-run after changing the menu's labels:
    pip install pillow && apt-get install fonts-noto-cjk
    python tools/make_richmenu_image.py [--font PATH]   # any font with Japanese glyphs, e.g. fonts-ipafont-gothic

The areas follow bot/channels/line/richmenu.py's AREAS, left to right. The last one chooses the language:
it is labelled in Japanese and English, since its reader may read either (or neither yet).
"""

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 2500, 843  # LINE's compact rich menu size
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
AREAS = [
    ("予約する", "オンライン職業相談", "#1f7a4d"),
    ("予約の確認", "キャンセルもこちら", "#2b5d9b"),
    ("ヘルプ", "使い方・お問い合わせ", "#6b6b6b"),
    ("言語", "English / やさしい にほんご", "#8a5a14"),
]
OUT = Path(__file__).resolve().parent.parent / "bot" / "channels" / "line" / "assets" / "richmenu.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", default=FONT, help="a font file with Japanese glyphs")
    font = parser.parse_args().font
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    title = ImageFont.truetype(font, 120, index=0)
    cell = WIDTH // len(AREAS)
    for index, (label, sub, color) in enumerate(AREAS):
        left = index * cell
        right = WIDTH if index == len(AREAS) - 1 else left + cell
        draw.rectangle([left + 12, 12, right - 12, HEIGHT - 12], fill=color)
        draw.text(((left + right) / 2, HEIGHT / 2 - 50), label, font=title, fill="white", anchor="mm")
        size = 56
        small = ImageFont.truetype(font, size, index=0)
        while draw.textlength(sub, font=small) > right - left - 60 and size > 24:
            size -= 2
            small = ImageFont.truetype(font, size, index=0)
        draw.text(((left + right) / 2, HEIGHT / 2 + 110), sub, font=small, fill="#f0f0f0", anchor="mm")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    image.save(OUT, optimize=True)
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
