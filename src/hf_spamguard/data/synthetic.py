"""A deterministic synthetic set of marketplace listings, in the style of the moderation team's TSV.

Honest listings describe one item; keyword-spam listings describe the item and then stuff unrelated
brands, hashtags, "tags:" or "ignore:" blocks so that the listing shows up in more searches. Every
listing gets a small generated product photo (Pillow shapes), except about 10% whose image is missing,
as happens with real dead image links.

It is the embedded default for the demo and a test fixture. It is *not* a substitute for the real data
when measuring quality: the generator's patterns are far easier than real sellers' writing.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_spamguard.atomic import atomic_write_bytes

if TYPE_CHECKING:
    import PIL.Image

__all__ = ["DEMO_COLUMNS", "generate_demo_listings", "render_demo_image", "write_demo"]

# Same column order as the moderation team's file (after the unnamed index column).
DEMO_COLUMNS = ("product_id", "image_url", "description", "yes_count", "no_count", "label")
DEMO_SPLITS = (("train", 0.7), ("validation", 0.15), ("test", 0.15))
# A reserved TLD: these URLs can never resolve, exactly like the dead links in the real data.
DEMO_URL = "https://images.spamguard-demo.invalid/{product_id}/P0.jpg"

_COLOURS = {
    "black": (25, 25, 28),
    "white": (236, 236, 232),
    "cream": (238, 228, 200),
    "red": (190, 35, 40),
    "baby blue": (150, 190, 230),
    "navy": (30, 40, 90),
    "olive": (110, 115, 60),
    "pink": (240, 160, 190),
    "grey": (130, 130, 135),
    "mustard": (210, 170, 40),
    "brown": (110, 70, 40),
    "lilac": (190, 160, 220),
}
_BACKGROUNDS = [(245, 245, 245), (225, 220, 210), (210, 225, 235), (235, 225, 225), (200, 200, 195)]

_ITEMS = {
    # item: (shape drawn in the photo, typical sizes)
    "t-shirt": ("shirt", ["XS", "S", "M", "L", "XL"]),
    "graphic tee": ("shirt", ["S", "M", "L"]),
    "jumper": ("shirt", ["S", "M", "L", "UK 10", "UK 12"]),
    "hoodie": ("shirt", ["S", "M", "L", "XL"]),
    "mom jeans": ("trousers", ["W26", "W28", "W30", "UK 8", "UK 10"]),
    "cargo trousers": ("trousers", ["W28", "W30", "W32"]),
    "mini skirt": ("skirt", ["XS", "S", "UK 6", "UK 8"]),
    "slip dress": ("dress", ["XS", "S", "M", "UK 8"]),
    "trainers": ("shoe", ["UK 5", "UK 7", "UK 9", "US 10"]),
    "boots": ("shoe", ["UK 4", "UK 6", "EU 39"]),
    "shoulder bag": ("bag", ["one size"]),
    "bucket hat": ("hat", ["one size"]),
}
_BRANDS = [
    "Levi's",
    "Nike",
    "Adidas",
    "Zara",
    "H&M",
    "Topshop",
    "Carhartt",
    "Ralph Lauren",
    "Dr Martens",
    "Urban Outfitters",
    "Brandy Melville",
    "Stussy",
    "Tommy Hilfiger",
    "Calvin Klein",
    "Reebok",
    "New Balance",
    "Converse",
    "Vans",
    "Fila",
    "Champion",
    "Dickies",
    "Patagonia",
    "The North Face",
    "Guess",
    "Diesel",
    "Wrangler",
    "Lee",
    "Gucci",
    "Prada",
    "Versace",
    "Chanel",
    "Fendi",
    "Dior",
    "Balenciaga",
    "Supreme",
    "Off White",
    "Yeezy",
    "Jordan",
    "Stone Island",
    "Burberry",
    "Moschino",
]
_LUXURY = {"Gucci", "Prada", "Versace", "Chanel", "Fendi", "Dior", "Balenciaga", "Burberry", "Moschino"}
_STYLE_WORDS = [
    "y2k",
    "90s",
    "00s",
    "vintage",
    "retro",
    "streetwear",
    "grunge",
    "indie",
    "festival",
    "cottagecore",
    "aesthetic",
    "boho",
    "skater",
    "preppy",
    "minimal",
    "goth",
    "emo",
    "rave",
    "party",
    "summer",
    "autumn",
    "oversized",
    "baggy",
    "cropped",
    "fairy",
    "kawaii",
    "coquette",
    "tiktok",
    "trendy",
    "rare",
]
_ITEM_WORDS = [
    "top",
    "cami",
    "corset",
    "bodycon",
    "dress",
    "jeans",
    "flares",
    "skirt",
    "shorts",
    "hoodie",
    "jacket",
    "cardigan",
    "trainers",
    "boots",
    "bag",
    "hat",
    "bikini",
    "tracksuit",
    "denim",
    "leather",
    "mesh",
    "satin",
    "lace",
    "floral",
    "striped",
    "leopard",
    "camo",
    "tie dye",
    "gingham",
    "checked",
]
_ADJECTIVES = ["Lovely", "Cute", "Gorgeous", "Classic", "Super soft", "Amazing", "Simple", "Beautiful", ""]
_CONDITIONS = [
    "Worn a handful of times, great condition.",
    "Brand new with tags.",
    "Good used condition, slight fading from washing.",
    "Only flaw is a tiny mark on the back (see last pic).",
    "Excellent condition, no flaws.",
    "Well loved but lots of life left.",
]
_EXTRAS = [
    "Fits true to size.",
    "Would suit a size {alt} too.",
    "Model is 5'5 for reference.",
    "Measurements available on request.",
    "Smoke and pet free home.",
    "Bundle discounts available!",
    "FREE SHIPPING!",
    "Ships within 2 days, send me an offer.",
    "Open to offers, no swaps sorry.",
    "",
]
_SPAM_MARKERS = ["tags:", "Tags:", "ignore:", "Ignore:", "IGNORE TAGS", "search:", "#"]


def _honest_text(rng: random.Random, item: str, colour: str, brand: str, size: str) -> str:
    adjective = rng.choice(_ADJECTIVES)
    head = f"{adjective} {colour} {brand} {item}".strip()
    parts = [f"{head[0].upper()}{head[1:]}, size {size}.", rng.choice(_CONDITIONS)]
    extra = rng.choice(_EXTRAS).format(alt=rng.choice(["8", "10", "S", "M"]))
    if extra:
        parts.append(extra)
    if rng.random() < 0.35:
        # A few relevant hashtags are normal selling practice, not spam: this keeps the task non-trivial.
        tags = rng.sample([item.split()[-1], colour.split()[-1], brand.split()[0].lower(), "vintage"], k=2)
        parts.append(" ".join(f"#{t.replace(' ', '')}" for t in tags))
    return "  ".join(parts)


def _stuffing(rng: random.Random, brand: str, heavy: bool) -> str:
    n_brands = rng.randint(8, 25) if heavy else rng.randint(3, 6)
    n_words = rng.randint(6, 30) if heavy else rng.randint(2, 5)
    words = rng.sample([b for b in _BRANDS if b != brand], k=n_brands)
    words += rng.sample(_STYLE_WORDS, k=min(n_words, len(_STYLE_WORDS)))
    if heavy:
        words += rng.sample(_ITEM_WORDS, k=rng.randint(4, 12))
    rng.shuffle(words)
    marker = rng.choice(_SPAM_MARKERS)
    if marker == "#":
        return " ".join("#" + w.replace(" ", "").replace("'", "").lower() for w in words)
    if rng.random() < 0.5:
        return f"{marker} " + " ".join(w.lower() for w in words)
    return f"{marker} " + ", ".join(words)


def _votes(rng: random.Random, label: int, ambiguous: bool) -> tuple[int, int]:
    """Rater votes (yes = spam) whose majority equals ``label``; ambiguous listings get split votes."""
    raters = rng.choices([3, 3, 3, 3, 3, 3, 3, 3, 4, 5, 6, 7], k=1)[0]
    if raters % 2 == 0:
        raters += 1  # avoid ties: the demo's labels always follow a strict majority
    majority = raters // 2 + 1
    agree = rng.randint(majority, raters - 1) if ambiguous else raters
    yes, no = (agree, raters - agree) if label == 1 else (raters - agree, agree)
    return yes, no


def generate_demo_listings(n: int = 300, seed: int = 0) -> list[dict[str, Any]]:
    """Return ``n`` synthetic listings as dicts with the TSV columns plus ``has_image`` and ``item``.

    Deterministic for a given ``(n, seed)``. About half are keyword spam (``label`` 1); about 15% of
    listings have split rater votes; about 10% have no image (``has_image`` False).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    listings: list[dict[str, Any]] = []
    product_ids = rng.sample(range(170_000_000, 190_000_000), k=n)
    for product_id in product_ids:
        item = rng.choice(list(_ITEMS))
        colour = rng.choice(list(_COLOURS))
        brand = rng.choice([b for b in _BRANDS if b not in _LUXURY])
        size = rng.choice(_ITEMS[item][1])
        label = int(rng.random() < 0.5)
        text = _honest_text(rng, item, colour, brand, size)
        # Hard cases: light stuffing that raters split on, or honest text with many features listed.
        ambiguous = rng.random() < 0.15
        if label == 1:
            text = f"{text}   {_stuffing(rng, brand, heavy=not ambiguous)}"
        elif ambiguous:
            text = f"{text}  Perfect for {rng.choice(_STYLE_WORDS)} / {rng.choice(_STYLE_WORDS)} outfits."
        yes, no = _votes(rng, label, ambiguous)
        listings.append(
            {
                "product_id": str(product_id),
                "image_url": DEMO_URL.format(product_id=product_id),
                "description": text,
                "yes_count": yes,
                "no_count": no,
                "label": label,
                "has_image": rng.random() >= 0.1,
                "item": item,
                "colour": colour,
            }
        )
    return listings


def render_demo_image(listing: dict[str, Any], size: int = 160) -> PIL.Image.Image:
    """Draw a simple product photo for a demo listing (a coloured garment shape on a plain backdrop)."""
    from PIL import Image, ImageDraw

    rng = random.Random(int(listing["product_id"]))
    background = rng.choice(_BACKGROUNDS)
    colour = _COLOURS.get(listing.get("colour", ""), (120, 120, 120))
    shape = _ITEMS.get(listing.get("item", ""), ("bag", []))[0]
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    s = size / 160  # shapes are designed on a 160 px canvas
    jitter = rng.randint(-8, 8) * s

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * s + jitter, y0 * s, x1 * s + jitter, y1 * s]

    if shape == "shirt":
        draw.polygon(
            [
                (a * s + jitter, b * s)
                for a, b in [
                    (45, 30),
                    (65, 25),
                    (95, 25),
                    (115, 30),
                    (140, 60),
                    (120, 72),
                    (112, 60),
                    (112, 135),
                    (48, 135),
                    (48, 60),
                    (40, 72),
                    (20, 60),
                ]
            ],
            fill=colour,
        )
        draw.ellipse(box(68, 20, 92, 34), fill=background)
    elif shape == "trousers":
        draw.polygon(
            [
                (a * s + jitter, b * s)
                for a, b in [(50, 20), (110, 20), (118, 140), (88, 140), (80, 60), (72, 140), (42, 140)]
            ],
            fill=colour,
        )
    elif shape == "skirt":
        draw.polygon(
            [(a * s + jitter, b * s) for a, b in [(58, 45), (102, 45), (125, 115), (35, 115)]], fill=colour
        )
    elif shape == "dress":
        draw.polygon(
            [
                (a * s + jitter, b * s)
                for a, b in [(62, 20), (98, 20), (100, 60), (128, 140), (32, 140), (60, 60)]
            ],
            fill=colour,
        )
    elif shape == "shoe":
        draw.rounded_rectangle(box(25, 85, 135, 115), radius=int(12 * s), fill=colour)
        draw.ellipse(box(25, 60, 85, 110), fill=colour)
        draw.rectangle(box(25, 108, 135, 118), fill=(240, 240, 240))
    elif shape == "hat":
        draw.ellipse(box(25, 85, 135, 115), fill=colour)
        draw.chord(box(45, 40, 115, 120), 180, 360, fill=colour)
    else:  # bag
        draw.arc(box(55, 25, 105, 85), 180, 360, fill=colour, width=max(1, int(6 * s)))
        draw.rounded_rectangle(box(35, 55, 125, 130), radius=int(10 * s), fill=colour)
    # A little sensor noise so that JPEG sizes and pixel statistics differ between photos.
    for _ in range(40):
        x, y = rng.randrange(size), rng.randrange(size)
        draw.point((x, y), fill=tuple(min(255, c + rng.randint(-25, 25)) for c in background))
    return img


def _tsv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(["", *DEMO_COLUMNS])  # leading unnamed index column, as in the real export
    for i, row in enumerate(rows):
        writer.writerow([i, *(row[c] for c in DEMO_COLUMNS)])
    return buf.getvalue().encode("utf-8")


def write_demo(out_dir: str | Path, n: int = 300, seed: int = 0) -> Path:
    """Write the demo listings to ``out_dir``: ``train.tsv``, ``validation.tsv``, ``test.tsv`` (70/15/15)
    and ``images/<product_id>.jpg`` for listings that have an image. Returns ``out_dir``.

    Deterministic: the same ``(n, seed)`` always gives byte-identical files.
    """
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    listings = generate_demo_listings(n=n, seed=seed)
    start = 0
    for i, (split, fraction) in enumerate(DEMO_SPLITS):
        stop = n if i == len(DEMO_SPLITS) - 1 else start + round(n * fraction)
        atomic_write_bytes(out / f"{split}.tsv", _tsv_bytes(listings[start:stop]))
        start = stop
    for listing in listings:
        target = images / f"{listing['product_id']}.jpg"
        if not listing["has_image"]:
            target.unlink(missing_ok=True)
            continue
        buf = io.BytesIO()
        render_demo_image(listing).save(buf, format="JPEG", quality=85)
        atomic_write_bytes(target, buf.getvalue())
    return out
