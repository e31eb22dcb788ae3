"""Draw the rich menu image (bot/channels/line/assets/richmenu.png), committed to the repo.

Not needed at run time. Re-run after changing the menu's labels:
    pip install pillow && apt-get install fonts-noto-cjk
    python tools/make_richmenu_image.py
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 2500, 843  # LINE's compact rich menu size
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
AREAS = [
    ("予約する", "オンライン職業相談", "#1f7a4d"),
    ("予約の確認", "キャンセルもこちら", "#2b5d9b"),
    ("ヘルプ", "使い方・お問い合わせ", "#6b6b6b"),
]
OUT = Path(__file__).resolve().parent.parent / "bot" / "channels" / "line" / "assets" / "richmenu.png"


def main() -> None:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    title = ImageFont.truetype(FONT, 120, index=0)
    small = ImageFont.truetype(FONT, 64, index=0)
    cell = WIDTH // len(AREAS)
    for index, (label, sub, color) in enumerate(AREAS):
        left = index * cell
        draw.rectangle([left + 12, 12, left + cell - 12, HEIGHT - 12], fill=color)
        draw.text((left + cell / 2, HEIGHT / 2 - 50), label, font=title, fill="white", anchor="mm")
        draw.text((left + cell / 2, HEIGHT / 2 + 110), sub, font=small, fill="#f0f0f0", anchor="mm")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    image.save(OUT, optimize=True)
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
