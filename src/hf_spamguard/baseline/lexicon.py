"""The brand lexicon and the keyword-block markers the baseline's stuffing features and reasons look for.

Plain data and the Python tokenisation rule only (standard library): the featuriser hashes these lists
once at import (:mod:`hf_spamguard.baseline.featurizer`), the explanations match them as strings
(:mod:`hf_spamguard.baseline.explain`). Everything here is lower case, like the text both match it
against.
"""

from __future__ import annotations

import re

# Brands that keyword stuffers list on fashion marketplaces (lower case; multi-word entries are
# matched as bigrams). Ambiguous words ("lee", "gap", "vans") are in on purpose: in a list they are
# brands, and the model weighs density, not single mentions.
BRANDS: tuple[str, ...] = tuple(
    [
        "nike",
        "adidas",
        "supreme",
        "palace",
        "bape",
        "stussy",
        "carhartt",
        "dickies",
        "levi",
        "levis",
        "wrangler",
        "lee",
        "diesel",
        "guess",
        "gap",
        "zara",
        "topshop",
        "asos",
        "hollister",
        "abercrombie",
        "uniqlo",
        "champion",
        "fila",
        "puma",
        "reebok",
        "vans",
        "converse",
        "jordan",
        "jordans",
        "yeezy",
        "yeezys",
        "gucci",
        "prada",
        "versace",
        "fendi",
        "balenciaga",
        "burberry",
        "chanel",
        "dior",
        "vuitton",
        "lv",
        "hermes",
        "givenchy",
        "moschino",
        "valentino",
        "armani",
        "ysl",
        "celine",
        "loewe",
        "bottega",
        "kenzo",
        "balmain",
        "offwhite",
        "vetements",
        "margiela",
        "cdg",
        "yohji",
        "acne",
        "apc",
        "kith",
        "essentials",
        "undercover",
        "wtaps",
        "visvim",
        "kapital",
        "sacai",
        "ambush",
        "alyx",
        "vlone",
        "assc",
        "bbc",
        "evisu",
        "affliction",
        "juicy",
        "bebe",
        "tommy",
        "hilfiger",
        "lauren",
        "polo",
        "lacoste",
        "patagonia",
        "tnf",
        "arcteryx",
        "columbia",
        "timberland",
        "martens",
        "docs",
        "ugg",
        "uggs",
        "birkenstock",
        "crocs",
        "asics",
        "saucony",
        "salomon",
        "hoka",
        "brandy",
        "reformation",
        "anthropologie",
        "madewell",
        "aritzia",
        "lululemon",
        "gymshark",
        "skims",
        "shein",
        "boohoo",
        "missguided",
        "prettylittlething",
        "plt",
        "hm",
        "mango",
        "bershka",
        "stradivarius",
        "forever21",
        "aeropostale",
        "dkny",
        "kors",
        "coach",
        "tiffany",
        "pandora",
        "swarovski",
        "rolex",
        "casio",
        "gshock",
        "seiko",
        "oakley",
        "rayban",
        "disney",
        "marvel",
        "pokemon",
        "nasa",
        "thrasher",
        "quiksilver",
        "billabong",
        "volcom",
        "roxy",
        "hurley",
        "oneill",
        "superdry",
        "hugo",
        "allsaints",
        "reiss",
        "hobbs",
        "monki",
        "weekday",
        "arket",
        "obey",
        "huf",
        "ellesse",
        "kappa",
        "umbro",
        "lonsdale",
        "slazenger",
        "everlast",
        "starter",
        "nba",
        "nfl",
        "mlb",
        "ncaa",
        "ferrari",
        "porsche",
        "redbubble",
        "lulu",
        "fubu",
        "kangol",
        "stüssy",
        "bapesta",
        "sb",
        "dunk",
        "dunks",
        "airmax",
        "vapormax",
        "foamposite",
        "jansport",
        "fjallraven",
        "kanken",
        "longchamp",
        "hydroflask",
        "stanley",
    ]
)

# Two-word brands (matched as consecutive tokens). Their parts above may also count alone.
BRAND_BIGRAMS: tuple[str, ...] = (
    "off white",
    "stone island",
    "ralph lauren",
    "tommy hilfiger",
    "north face",
    "new balance",
    "dr martens",
    "true religion",
    "ed hardy",
    "von dutch",
    "juicy couture",
    "baby phat",
    "apple bottoms",
    "fred perry",
    "ben sherman",
    "calvin klein",
    "michael kors",
    "kate spade",
    "marc jacobs",
    "tory burch",
    "steve madden",
    "ray ban",
    "urban outfitters",
    "brandy melville",
    "free people",
    "fashion nova",
    "american eagle",
    "old navy",
    "banana republic",
    "louis vuitton",
    "chrome hearts",
    "rick owens",
    "raf simons",
    "comme des",
    "hugo boss",
    "ted baker",
    "all saints",
    "santa cruz",
    "rip curl",
    "harley davidson",
    "fear of",
    "anti social",
    "cp company",
    "princess polly",
    "oh polly",
    "pull bear",
    "forever 21",
    "jack jones",
    "karen millen",
    "sergio tacchini",
    "mitchell ness",
    "ivy park",
    "air max",
    "air force",
    "bape sta",
    "h m",
    "levi s",
    "hydro flask",
)

#: One-word and two-word brands as sets, for the explanations' string matching.
BRAND_SET: frozenset[str] = frozenset(BRANDS)
BRAND_BIGRAM_SET: frozenset[str] = frozenset(BRAND_BIGRAMS)

#: Words that open a keyword-stuffing block when followed by ``:``, ``-``, ``=`` or ``>`` ("tags:",
#: "ignore:", "keywords -", "search terms:" ...). Order matters: a regex alternation tries them in turn.
MARKER_WORDS: tuple[str, ...] = (
    "tags",
    "tag",
    "tagged",
    "tagging",
    "ignore",
    "ignored",
    "keywords",
    "keyword",
    "search terms",
    "search",
    "hashtags",
    "related",
    "similar",
    "ref",
    "seo",
)
_MARKER_ALTERNATIVES = "|".join(MARKER_WORDS)

#: The start of a keyword block, as a Python regex (explanations): group 1 is the marker word. The
#: featuriser applies the same rule token by token (:mod:`~hf_spamguard.baseline.stuffing`).
MARKER_RE: re.Pattern[str] = re.compile(rf"(?<![a-z])({_MARKER_ALTERNATIVES})\s*[:\-=>]+")

#: Punctuation trimmed off both ends of a whitespace-separated token: keeps "off-white", "h&m" and
#: "levi's" whole while "nike," and "(adidas)" become brands.
TRIM_CHARS = ".,:;!?()[]{}\"'*#/|-_~+=<>&@%$^`\\"

#: Brand lookups see a token's spelling with curly quotes trimmed (Arrow ``utf8_trim`` characters) and
#: ``& ' ’ - .`` removed inside it (an RE2 / Python regex), so "h&m", "levi’s", "off-white" and
#: "jordan's" match the entries "hm", "levis", "offwhite" and "jordans" above. Generic spelling rules
#: only: no entry was added for the way one dataset spells a brand.
BRAND_KEY_TRIM = "’‘“”"
BRAND_KEY_DROP = r"[&'’.\-]"
_BRAND_KEY_DROP_RE = re.compile(BRAND_KEY_DROP)


def brand_key(token: str) -> str:
    """The spelling of one token (from :func:`tokens`) that the brand lexicon is matched against."""
    return _BRAND_KEY_DROP_RE.sub("", token.strip(BRAND_KEY_TRIM))


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text`` (long word lists stay readable in the source)."""
    return tuple(text.split())


#: English stop words (scikit-learn's ``ENGLISH_STOP_WORDS``, copied so that scoring never imports
#: scikit-learn) plus chat spellings. A long run of tokens without any of them reads as a keyword list.
STOP_WORDS: frozenset[str] = frozenset(
    _words(
        """
        a about above across after afterwards again against all almost alone along already also
        although always am among amongst amoungst amount an and another any anyhow anyone anything
        anyway anywhere are around as at back be became because become becomes becoming been before
        beforehand behind being below beside besides between beyond bill both bottom but by call can
        cannot cant co con could couldnt cry de describe detail do done down due during each eg
        eight either eleven else elsewhere empty enough etc even ever every everyone everything
        everywhere except few fifteen fifty fill find fire first five for former formerly forty
        found four from front full further get give go had has hasnt have he hence her here
        hereafter hereby herein hereupon hers herself him himself his how however hundred i ie if in
        inc indeed interest into is it its itself keep last latter latterly least less ltd made many
        may me meanwhile might mill mine more moreover most mostly move much must my myself name
        namely neither never nevertheless next nine no nobody none noone nor not nothing now nowhere
        of off often on once one only onto or other others otherwise our ours ourselves out over own
        part per perhaps please put rather re same see seem seemed seeming seems serious several she
        should show side since sincere six sixty so some somehow someone something sometime
        sometimes somewhere still such system take ten than that the their them themselves then
        thence there thereafter thereby therefore therein thereupon these they thick thin third this
        those though three through throughout thru thus to together too top toward towards twelve
        twenty two un under until up upon us very via was we well were what whatever when whence
        whenever where whereafter whereas whereby wherein whereupon wherever whether which while
        whither who whoever whole whom whose why will with within without would yet you your yours
        yourself yourselves im i'm i’m its it's it’s dont don't don’t u ur
        """
    )
)

#: Style and era words that keyword lists pile up (matched after trimming, so "#y2k" counts).
STYLE_WORDS: frozenset[str] = frozenset(
    _words(
        """
        y2k 90s 80s 70s 60s 00s 2000s 1990s 1980s 1970s 90’s 80’s 70’s 00’s 2000’s vintage vtg retro
        grunge goth gothic egirl eboy softgirl indie boho bohemian hippie hippy cottagecore
        fairycore aesthetic streetwear skater skate emo punk alt alternative kawaii harajuku vsco
        thrift thrifted preloved deadstock rare trendy trend cute baddie coquette kidcore cyber
        mallgoth lolita festival rave dainty minimalist minimal classic basic depop depopfamous
        hypebeast hype
        """
    )
)

#: Garment categories: a listing that names many unrelated ones is describing more than its item.
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "top": _words("top tops tee tshirt t-shirt shirt blouse cami camisole tank vest bodysuit crop bralette corset tube halter"),
    "knit": _words("jumper sweater sweatshirt hoodie hoody cardigan knit knitwear pullover crewneck fleece"),
    "outerwear": _words("jacket coat blazer puffer windbreaker parka gilet bomber"),
    "bottoms": _words("jeans jean trousers pants joggers leggings shorts skirt skort cargo cargos flares chinos trackies sweatpants"),
    "dress": _words("dress dresses gown playsuit jumpsuit romper"),
    "shoes": _words("shoes trainers sneakers boots heels sandals platforms loafers slippers wedges"),
    "bag": _words("bag bags handbag purse tote backpack wallet"),
    "jewellery": _words("necklace earrings earring ring rings bracelet jewelry jewellery choker chain pendant anklet"),
    "accessories": _words("hat cap beanie scarf belt sunglasses headband scrunchie socks gloves"),
    "swim": _words("bikini swimsuit swimwear lingerie bra"),
    "beauty": _words("makeup lipstick eyeshadow perfume skincare"),
}  # fmt: skip

#: The broader keyword-block marker, token by token (a feature, never a rule on its own): an
#: ``IGNORE_WORDS`` token; a ``TAG_WORDS`` token not right after a ``NOT_A_BLOCK_BEFORE`` word ("with
#: tags", "no tags" describe the garment); "terms" after "search"; "exposure" after "for" / "4" ("tags
#: for exposure", "branded for exposure"). Case, punctuation and separators do not matter: tokens are
#: lower-cased and trimmed, so "IGNORE", "Ignore pls:", "tags~~~~", "tags //" and "Tags (sorry):" all count.
IGNORE_WORDS: tuple[str, ...] = ("ignore", "ignor", "igonre")
TAG_WORDS: tuple[str, ...] = ("tags", "tag", "tagged", "tagging", "keywords", "keyword", "hashtags", "seo")
NOT_A_BLOCK_BEFORE: tuple[str, ...] = (
    "with",
    "without",
    "w",
    "new",
    "no",
    "original",
    "price",
    "size",
    "care",
)
EXPOSURE_BEFORE: tuple[str, ...] = ("for", "4")


def broad_marker_index(words: list[str]) -> int | None:
    """Index in ``words`` (from :func:`tokens`) of the first broad keyword-block marker, or None."""
    for i, w in enumerate(words):
        prev = words[i - 1] if i else ""
        if (
            w in IGNORE_WORDS
            or (w in TAG_WORDS and prev not in NOT_A_BLOCK_BEFORE)
            or (w in ("terms", "term") and prev == "search")
            or (w == "exposure" and prev in EXPOSURE_BEFORE)
        ):
            return i
    return None


def tokens(text: str) -> list[str]:
    """The featuriser's tokenisation, in Python (explanations): lower case, whitespace split, punctuation
    (:data:`TRIM_CHARS`) trimmed off both ends, empty tokens dropped."""
    return [t for t in (w.strip(TRIM_CHARS) for w in text.lower().split()) if t]


__all__ = [
    "BRAND_KEY_DROP",
    "BRAND_KEY_TRIM",
    "CATEGORY_WORDS",
    "EXPOSURE_BEFORE",
    "IGNORE_WORDS",
    "NOT_A_BLOCK_BEFORE",
    "STOP_WORDS",
    "STYLE_WORDS",
    "TAG_WORDS",
    "brand_key",
    "broad_marker_index",
    "BRANDS",
    "BRAND_BIGRAMS",
    "BRAND_BIGRAM_SET",
    "BRAND_SET",
    "MARKER_RE",
    "MARKER_WORDS",
    "TRIM_CHARS",
    "tokens",
]
