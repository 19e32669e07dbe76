"""Numeral parser: which nouns a prompt counts, and how many of each.

`parse_counts("Two cats on a sofa and a dog.")` → `{"cats": 2, "dog": 1}`: the head noun's surface
form as written, in prompt order.

The prompt is read as ComfyUI's text encoder reads it: weight markup such as "(three:1.2)" is
removed and "\\(" "\\)" are literal parentheses (`token_mapping.comfy_prompt_text`). It is then
turned into words with a coarse word class each, by spaCy's tagger and parser when spaCy's official
English pipeline `en_core_web_sm` loads, otherwise by built-in rules (closed-class word lists and
suffixes). One shared extractor then finds quantifiers (digits, number words, a/an/one/single/lone,
"a pair of", "a dozen"), the noun phrase each one counts, and whether an article-only phrase is a
counted object or scenery.

A group mentioned again is the same group: a numeral after a referring determiner ("the three
cats", "these two dogs", "all three cats", "their two kittens") names a noun already counted and
adds nothing; any other mention ("two cats on the left and two cats on the right", "another two
cats", "two more cats") is a new group and adds.

Scenery follows CountBench's annotations: a noun with only "a/an" is counted when it is a subject
("a dog runs"), a companion ("with a dog", "behind a house", "chased by a dog") or coordinated with
a counted noun ("two balloons and a stick"); it is scenery inside a locative phrase ("in a park",
"of a tree") or as a verb's object ("chasing a ball"). Explicit numerals always count.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from .token_mapping import comfy_prompt_text

Backend = Literal["auto", "spacy", "rules"]

SPACY_MODEL_NAME = "en_core_web_sm"

logger = logging.getLogger("numina")

_UNITS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
NUMBER_WORDS = {**_UNITS, **_TENS, "dozen": 12}

_ARTICLES = {"a", "an"}
_SINGLE_WORDS = {"single", "lone", "solitary"}
# "a pair of shoes": the noun after "of" gets the count.
_GROUP_SIZES = {"pair": 2, "couple": 2, "trio": 3, "quartet": 4}
# "a flock of birds" names no number; "a flock of six birds" counts the birds through "six".
_COLLECTIVES = {
    "flock", "pack", "group", "herd", "school", "swarm", "bunch", "crowd", "team", "band", "troop",
    "pod", "colony", "litter", "gaggle", "pride", "fleet", "row", "line", "set", "family", "lot",
    "lots", "number", "handful", "few", "bouquet", "cluster", "stack", "pile", "collection",
}
# "five pieces of debris", "debris-pieces": the substance is the counted noun.
_PARTITIVES = {"piece", "pieces", "bit", "bits", "chunk", "chunks", "fragment", "fragments",
               "slice", "slices", "shard", "shards"}
# Numerals measuring time or size, not counting objects ("one day", "5 meters").
_MEASURE_NOUNS = {
    "day", "days", "night", "nights", "hour", "hours", "minute", "minutes", "second", "seconds",
    "year", "years", "month", "months", "week", "weeks", "time", "times", "moment", "o'clock",
    "pm", "am", "meter", "meters", "metre", "metres", "km", "kilometers", "mile", "miles", "foot",
    "feet", "inch", "inches", "degree", "degrees", "percent", "%", "way", "side",
}
_PRONOUN_FOLLOWERS = {"another", "other", "others", "of", "by", "after"}
# "two more cats": the numeral counts the noun after "more" ("one more time" stays a measure).
_ADDITION_WORDS = {"more", "additional", "extra"}
# Before a numeral these point back at a group already introduced: "the three cats", "all three cats".
_REFERRING_DETERMINERS = {"the", "these", "those", "both", "all"}
# A possessive points back only at a group introduced with the same one: "her two dogs … her two
# dogs" is one group, "her two dogs and his two dogs" two.
_POSSESSIVES = {"its", "their", "his", "her", "our", "my", "your"}
# Between such a determiner and the numeral they keep the reference: "the same two dogs", "the first
# two cats" (a part of the group); "the other two cats" is a different group.
_REFERRING_MODIFIERS = {"same", "first", "last", "remaining", "aforementioned", "above"}
_OPENING_BRACKETS = {"(", "["}
_CLOSING_BRACKETS = {")", "]"}

_DETERMINERS = {"the", "this", "that", "these", "those", "their", "his", "her", "its", "my",
                "our", "your", "some", "each", "every", "another", "other", "any", "no", "all",
                "both", "several", "many", "multiple", "various", "few"}
_PREPOSITIONS = {
    "in", "on", "at", "of", "over", "under", "through", "across", "along", "around", "near",
    "into", "onto", "from", "to", "toward", "towards", "by", "with", "without", "behind",
    "beside", "besides", "between", "among", "amid", "amidst", "above", "below", "beneath",
    "inside", "outside", "within", "past", "alongside", "against", "beyond", "upon", "off",
    "down", "up", "underneath", "atop", "throughout", "during", "for", "about", "like", "via",
    "out", "next", "front",
}
_CLAUSE_OPENERS = {"as", "while", "when", "whereas", "where", "although", "though", "because",
                   "until", "whilst", "then", "so", "but", "and", "or", "nor", "yet", "before",
                   "after", "since", "once", "if"}
_COORDINATORS = {"and", "or", "nor", "plus"}
_PRONOUNS = {"it", "they", "them", "he", "she", "him", "we", "us", "you", "i", "me", "itself",
             "themselves", "himself", "herself", "each", "one", "someone", "something",
             "everyone", "everything", "nothing", "there", "here"}
_AUXILIARIES = {"is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had",
                "will", "would", "can", "could", "may", "might", "shall", "should", "must", "do",
                "does", "did"}
_ADVERBS = {"nearby", "together", "away", "back", "forth", "alongside", "apart", "around",
            "again", "very", "too", "also", "just", "still", "even", "almost", "quite", "so",
            "then", "now", "here", "there", "overhead", "outside", "inside", "upward", "upwards",
            "downward", "downwards", "forward", "forwards", "aside", "ahead", "along", "low", "high",
            "fast", "slowly", "far"}
# Prepositions whose object is a thing in the scene, not a place ("with a dog", "behind a house").
_COMPANION_PREPOSITIONS = {"with", "behind", "beside", "alongside", "accompanying", "besides"}
# Nouns that end like a participle ("-ing", "-ed").
_ING_NOUNS = {"building", "buildings", "painting", "paintings", "ring", "rings", "king", "kings",
              "wing", "wings", "ceiling", "string", "strings", "swing", "swings", "spring",
              "springs", "thing", "things", "evening", "morning", "clothing", "pudding",
              "sibling", "siblings", "duckling", "ducklings", "earring", "earrings", "dumpling",
              "dumplings", "seedling", "seedlings", "sapling", "saplings", "herring", "icing",
              "lightning", "sling", "sting", "viking", "vikings", "darling", "ping", "wedding",
              "weddings", "railing", "railings", "stocking", "stockings", "awning", "awnings",
              "offspring", "gosling", "goslings", "bedding", "landing"}
_ED_NOUNS = {"bed", "beds", "shed", "sheds", "sled", "sleds", "seed", "seeds", "reed", "reeds",
             "steed", "steeds", "weed", "weeds", "bread", "thread", "threads", "red",
             "shred", "head", "heads", "speed", "need", "feed", "bird"}
# Nouns that taggers often read as verbs ("one teddy bear sitting", "a single red rose in a vase").
_VERB_HOMOGRAPH_NOUNS = {"rose", "roses", "bear", "bears", "seal", "seals", "bat", "bats", "duck",
                         "ducks", "saw", "saws", "dove", "doves", "lamb", "lambs"}
# Common verbs in scene prompts, base form: a noun phrase ending in one of these before a
# preposition or the end ("one cyclist race down a hill", "one eagle circles") ends a word early.
_SCENE_VERBS = {
    "play", "walk", "run", "fly", "swim", "race", "jump", "dance", "sit", "stand", "watch", "fall",
    "swing", "scurry", "leap", "circle", "glow", "float", "perform", "chase", "ride", "drift",
    "move", "roll", "spin", "climb", "rest", "sleep", "eat", "drink", "look", "stare", "wait",
    "wander", "graze", "roam", "hover", "sail", "drive", "crawl", "hop", "glide", "soar", "fight",
    "sing", "read", "talk", "laugh", "cross", "carry", "hold", "pull", "push", "follow", "lead",
    "hunt", "dive", "splash", "bounce", "shine", "burn", "twinkle", "flicker", "sway", "blow",
    "grow", "bloom", "hang", "streak", "flutter", "gallop", "march", "prowl", "pounce", "bark",
    "howl", "roar", "sparkle", "flash", "drop", "rise", "sink", "spill", "pour", "flow", "land",
    "lie", "lay", "kneel", "wave", "smile", "cry", "work", "cook", "paint", "write", "skate",
    "ski", "surf", "paddle", "row", "kick", "throw", "catch", "dig", "peck",
    "nibble", "chew", "sniff", "guard", "patrol", "appear", "emerge", "gather", "huddle", "pose",
    "stroll", "jog", "sprint", "skip", "trot", "waddle", "slither", "wriggle", "flap", "nest",
    "perch", "idle", "park", "travel", "approach", "collide", "crash", "explode",
    "burst", "melt", "drip", "shimmer", "loom", "tower", "orbit", "zoom", "dash", "rush",
    "sneak", "hide", "seek", "fetch", "tug",
}


def _verb_base(word: str) -> str | None:
    """The scene verb a form such as "circles", "watches", "scurries" or "play" belongs to."""
    candidates = [word]
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s"):
        candidates.append(word[:-1])
    return next((form for form in candidates if form in _SCENE_VERBS), None)


_IRREGULAR_PLURALS = {"children", "people", "men", "women", "mice", "geese", "feet", "teeth",
                      "oxen", "police", "cattle", "sheep", "fish", "deer", "gentlemen",
                      "firemen", "fishermen", "policemen", "snowmen", "lice", "dice"}


def _looks_plural(word: str) -> bool:
    if word in _IRREGULAR_PLURALS:
        return True
    return len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is", "'s"))


# Word classes used by the extractor.
NOUN, ADJ, NUM, DET, ADP, CCONJ, SCONJ, PRON, AUX, VERB, PARTICIPLE, ADV, PUNCT, HYPH, OTHER = (
    "noun", "adj", "num", "det", "adp", "cconj", "sconj", "pron", "aux", "verb", "participle",
    "adv", "punct", "hyph", "other")


@dataclass(frozen=True)
class Word:
    text: str
    kind: str
    plural: bool = False
    is_agent_by: bool = False  # "by" that introduces a passive's agent ("chased by a dog")
    sentence_start: bool = False

    @property
    def lower(self) -> str:
        return self.text.lower()


# --- spaCy backend -----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def load_spacy_model():
    """spaCy's official English pipeline (SPACY_MODEL_NAME), loaded once; None, with one log line
    saying why, when spaCy or the model cannot be loaded (the rule backend is used then)."""
    try:
        import spacy

        return spacy.load(SPACY_MODEL_NAME, exclude=["ner"])
    except (ImportError, OSError) as error:  # spaCy or the model is not installed
        logger.info("numeral parser: spaCy's %s is not available (%s: %s); using the rule parser",
                    SPACY_MODEL_NAME, type(error).__name__, error)
    except Exception as error:  # a broken install, e.g. a NumPy ABI mismatch (ValueError)
        logger.warning("numeral parser: spaCy's %s failed to load (%s: %s); using the rule parser",
                       SPACY_MODEL_NAME, type(error).__name__, error)
    return None


def _spacy_kind(token) -> tuple[str, bool]:
    tag, lower = token.tag_, token.lower_
    if lower in _ARTICLES:
        return DET, False
    if tag == "CD" or lower in NUMBER_WORDS:
        return NUM, False
    if tag == "HYPH" or token.text == "-":
        return HYPH, False
    if tag in {"IN", "RP", "TO"}:
        return (SCONJ if lower in _CLAUSE_OPENERS and lower not in _PREPOSITIONS else ADP), False
    if tag == "CC":
        return CCONJ, False
    if tag in {"DT", "PDT", "PRP$", "WDT", "WP$"}:
        return DET, False
    if tag in {"PRP", "WP", "EX"}:
        return PRON, False
    if tag == "MD" or token.pos_ == "AUX":
        return AUX, False
    if tag == "VBG":
        return (NOUN, lower.endswith("s")) if lower in _ING_NOUNS else (PARTICIPLE, False)
    if tag in {"VBN", "VBD"}:
        return PARTICIPLE, False
    if tag in {"VB", "VBP", "VBZ"}:
        return VERB, False
    if tag.startswith("RB") or tag == "WRB":
        return ADV, False
    if tag.startswith("JJ"):
        return ADJ, False
    if tag.startswith("NN"):
        if lower.endswith("ing") and len(lower) >= 5 and lower not in _ING_NOUNS:
            # The small tagger reads "candle flickering" as a compound; "-ing" after a noun is a
            # participle in scene prompts.
            return PARTICIPLE, False
        return NOUN, tag.endswith("S")
    if token.is_punct:
        return PUNCT, False
    return OTHER, False


def _spacy_words(prompt: str, nlp) -> list[Word]:
    doc = nlp(prompt)
    words = []
    for token in doc:
        kind, plural = _spacy_kind(token)
        words.append(Word(token.text, kind, plural, is_agent_by=token.dep_ == "agent",
                          sentence_start=token.is_sent_start or token.i == 0))
    return words


# --- rule backend ------------------------------------------------------------------------------

_WORD_PATTERN = re.compile(r"\d+(?:[.,]\d+)?|[A-Za-z]+(?:'[A-Za-z]+)?|-|[^\sA-Za-z\d]")


def _rule_kind(word: str, previous: str | None) -> tuple[str, bool]:
    lower = word.lower()
    if lower in _ARTICLES or lower in _DETERMINERS:
        return DET, False
    if lower.isdecimal() or lower in NUMBER_WORDS:
        return NUM, False
    if word == "-":
        return HYPH, False
    if not word[0].isalnum():
        return PUNCT, False
    if lower in _COORDINATORS:
        return CCONJ, False
    if lower in _CLAUSE_OPENERS and lower not in _PREPOSITIONS:
        return SCONJ, False
    if lower in _PREPOSITIONS:
        return ADP, False
    if lower in _AUXILIARIES:
        return AUX, False
    if lower in _PRONOUNS:
        return PRON, False
    if lower in _ADVERBS or (lower.endswith("ly") and len(lower) > 4 and lower not in {"family", "fly", "butterfly", "dragonfly", "lily", "belly", "jelly", "bully"}):
        return ADV, False
    if lower.endswith("ing") and len(lower) >= 5 and lower not in _ING_NOUNS:
        return PARTICIPLE, False
    if lower.endswith("ed") and len(lower) > 4 and lower not in _ED_NOUNS:
        return PARTICIPLE, False
    if previous is not None and (previous.lower() == "to" or previous.lower() in _AUXILIARIES and _verb_base(lower)):
        return VERB, False  # "to buy an ice cream", "are play..."
    return NOUN, _looks_plural(lower)


def _rule_words(prompt: str) -> list[Word]:
    texts = _WORD_PATTERN.findall(prompt)
    words = []
    sentence_start = True
    for index, text in enumerate(texts):
        kind, plural = _rule_kind(text, texts[index - 1] if index else None)
        is_agent_by = text.lower() == "by" and bool(words) and words[-1].kind == PARTICIPLE
        words.append(Word(text, kind, plural, is_agent_by=is_agent_by, sentence_start=sentence_start))
        sentence_start = text in {".", "!", "?", ";"}
    return words


# --- shared extractor --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Quantity:
    count: int
    phrase_start: int   # first word of the counted noun phrase
    explicit: bool      # a numeral or "single"/"lone", not a bare article


def _number_at(words: list[Word], index: int) -> tuple[int, int] | None:
    """(value, index after the numeral) for digits, number words, "twenty-one", "two dozen"."""
    lower = words[index].lower
    if lower.isdecimal():  # isdigit() would also take "²", which int() rejects
        value, end = int(lower), index + 1
    elif lower in NUMBER_WORDS and lower != "dozen":
        value, end = NUMBER_WORDS[lower], index + 1
        if (lower in _TENS and end + 1 < len(words) and words[end].kind == HYPH
                and words[end + 1].lower in _UNITS and _UNITS[words[end + 1].lower] < 10):
            value, end = value + _UNITS[words[end + 1].lower], end + 2
    else:
        return None
    if end < len(words) and words[end].lower == "dozen":
        value, end = value * 12, end + 1
    return value, end


def _quantity_at(words: list[Word], index: int) -> _Quantity | None:
    word = words[index]
    following = words[index + 1].lower if index + 1 < len(words) else ""
    if word.kind == NUM or word.lower in NUMBER_WORDS:
        if following in _PRONOUN_FOLLOWERS or (index > 0 and words[index - 1].lower == "the" and word.lower == "one"):
            return None
        if index > 0 and words[index - 1].kind == HYPH:  # inside a compound such as "tug-of-war"
            return None
        number = _number_at(words, index)
        if number is None or number[0] <= 0:
            return None
        value, end = number
        if (index > 0 and words[index - 1].text in _OPENING_BRACKETS and end < len(words)
                and words[end].text in _CLOSING_BRACKETS):
            end += 1  # "(three) cats"
        if end < len(words) and words[end].lower in _ADDITION_WORDS:
            end += 1
        return _Quantity(value, end, explicit=True)
    if word.lower in _ARTICLES:
        if following in _SINGLE_WORDS:
            return _Quantity(1, index + 2, explicit=True)
        if following == "dozen":
            return _Quantity(12, index + 2, explicit=True)
        if following in _GROUP_SIZES and index + 2 < len(words) and words[index + 2].lower == "of":
            return _Quantity(_GROUP_SIZES[following], index + 3, explicit=True)
        return _Quantity(1, index + 1, explicit=False)
    if word.lower in _SINGLE_WORDS and (index == 0 or words[index - 1].kind != DET):
        return _Quantity(1, index + 1, explicit=True)
    return None


def _is_modifier_position(words: list[Word], index: int) -> bool:
    """A participle or adverb that modifies the noun after it ("racing cars", "low-flying")."""
    nxt = words[index + 1] if index + 1 < len(words) else None
    return nxt is not None and nxt.kind in {NOUN, ADJ, PARTICIPLE, HYPH}


def _ends_phrase_as_verb(words: list[Word], index: int, count: int, content: list[int]) -> bool:
    """Whether a noun-looking word right after the phrase's nouns is really its verb
    ("one eagle circles", "two monkeys swing", "one cyclist race down a hill", "a person painting")."""
    word = words[index]
    previous = words[content[-1]]
    if count > 1 and previous.kind == NOUN and previous.plural and not (word.plural or _looks_plural(word.lower)):
        return True  # compounds rarely have a plural first part: "two biplanes perform loops"
    if previous.kind == NOUN and word.lower.endswith("ing") and _verb_base(word.lower[:-3]):
        return True  # "-ing" after a noun is a participle: "a person painting on a canvas"
    nxt = words[index + 1] if index + 1 < len(words) else None
    if nxt is not None and nxt.kind in {NOUN, ADJ, HYPH}:
        return False
    if _verb_base(word.lower):
        return True
    # a single thing does not end in a plural noun: "a distant star glows"
    return count == 1 and (word.plural or _looks_plural(word.lower)) and not previous.plural


def _noun_phrase(words: list[Word], start: int, count: int) -> tuple[int, int] | None:
    """(head index, index after the phrase) for the noun phrase starting at `start`. Brackets
    opened before the first content word are transparent ("two (dogs)", "two [black] dogs");
    a bracket after it ends the phrase ("one cat (orange)")."""
    content: list[int] = []
    open_brackets = 0
    index = start
    while index < len(words):
        word = words[index]
        if word.text in _OPENING_BRACKETS and not content:
            open_brackets += 1
        elif word.text in _CLOSING_BRACKETS and open_brackets:
            open_brackets -= 1
        elif word.kind in {NOUN, ADJ}:
            if content and _ends_phrase_as_verb(words, index, count, content):
                break
            content.append(index)
        elif word.kind == PARTICIPLE:
            # "racing cars" modifies; "the candle flickering" and "cars racing" end the phrase.
            if (content and words[content[-1]].kind == NOUN) or not _is_modifier_position(words, index):
                break
        elif word.kind == ADV:
            if not (index + 1 < len(words) and words[index + 1].kind == HYPH):  # "low-flying"
                break
        elif word.kind == HYPH:
            if index == start or words[index - 1].kind not in {ADV, PARTICIPLE, NOUN, ADJ}:
                break
        else:
            break
        index += 1
    if not content:
        return None
    return content[-1], index


def _head_surface(words: list[Word], head: int, end: int) -> tuple[str, int]:
    """The counted noun: the head, or for partitives the substance ("debris-pieces",
    "pieces of debris"). Returns (surface form, index after the phrase)."""
    lower = words[head].lower
    if lower in _PARTITIVES:
        if head >= 2 and words[head - 1].kind == HYPH and words[head - 2].kind in {NOUN, ADJ}:
            return words[head - 2].text, end
        if end < len(words) and words[end].lower == "of":
            inner = _noun_phrase(words, end + 1, 2)
            if inner is not None:
                return words[inner[0]].text, inner[1]
    return words[head].text, end


def _is_counted_article_phrase(words: list[Word], quantifier: int,
                               previous_phrase: tuple[int, str] | None) -> tuple[bool, str]:
    """Whether "a/an X" at `quantifier` is a counted object, and its role: "subject",
    "companion", "locative" or "object" (a later coordinated phrase inherits it)."""
    if quantifier == 0 or words[quantifier].sentence_start:
        return True, "subject"
    before = words[quantifier - 1]
    before2 = words[quantifier - 2].lower if quantifier >= 2 else ""
    if before.kind == CCONJ or before.text == ",":
        last = quantifier - 1
        while last > 0 and (words[last].kind == CCONJ or words[last].text == ","):
            last -= 1
        if previous_phrase is not None and previous_phrase[0] == last:
            role = previous_phrase[1]
            if role == "object":
                return False, "object"  # "chasing a ball and a stick"
            # "two cats on a sofa and a dog": a new participant, not a second piece of scenery.
            return True, "subject" if role == "locative" else role
        return True, "subject"  # a new clause: "... fly by and a distant star glows"
    if before.kind == SCONJ:
        return True, "subject"
    if before.kind == ADP:
        if (before.lower in _COMPANION_PREPOSITIONS or before.is_agent_by
                or (before.lower == "to" and before2 == "next")
                or (before.lower == "of" and before2 == "front")):
            return True, "companion"
        return False, "locative"
    if before.kind in {VERB, PARTICIPLE}:
        return False, "object"
    if previous_phrase is not None and previous_phrase[0] == quantifier - 2 and _verb_base(before.lower):
        return False, "object"  # the verb that ended the phrase before: "three kittens watch a butterfly"
    return True, "subject"


def _determiner_before(words: list[Word], quantifier: int) -> str:
    """The lower-case word before the numeral at `quantifier`, past "same"/"first"/… ("the" in
    "the same two dogs"); "" at the start."""
    index = quantifier - 1
    while index >= 0 and words[index].lower in _REFERRING_MODIFIERS:
        index -= 1
    return words[index].lower if index >= 0 else ""


def extract_counts(words: list[Word]) -> dict[str, int]:
    """Counted nouns and counts from classified words (the backend-independent part). A counted
    noun mentioned again after a referring determiner (or the possessive it was introduced with)
    keeps its count."""
    counts: dict[str, int] = {}
    introducing_possessives: dict[str, set[str]] = {}
    previous_phrase: tuple[int, str] | None = None  # (index of its last word, role)
    index = 0
    while index < len(words):
        quantity = _quantity_at(words, index)
        phrase = _noun_phrase(words, quantity.phrase_start, quantity.count) if quantity else None
        if quantity is None or phrase is None:
            index += 1
            continue
        head, end = phrase
        surface, end = _head_surface(words, head, end)
        of_follows = end < len(words) and words[end].lower == "of"
        head_lower = words[head].lower
        if quantity.explicit:
            counted, role = True, "subject"
        else:
            counted, role = _is_counted_article_phrase(words, index, previous_phrase)
        if of_follows and not quantity.explicit and (
                head_lower in _COLLECTIVES or (end + 1 < len(words) and words[end + 1].kind == NUM)):
            counted = False  # "a pack of five dogs": the numeral inside counts
        if head_lower in _MEASURE_NOUNS:
            counted = False
        determiner = _determiner_before(words, index)
        refers_back = surface in counts and (
            determiner in _REFERRING_DETERMINERS or determiner in introducing_possessives[surface])
        if counted and not refers_back:
            counts[surface] = counts.get(surface, 0) + quantity.count
            introducing_possessives.setdefault(surface, set()).update({determiner} & _POSSESSIVES)
        previous_phrase = (end - 1, role)
        index = end
    return counts


def _resolve_ambiguous(words: list[Word]) -> list[Word]:
    """Context fixes both backends need: "building" is a participle in "children building a
    sandcastle", "bear" a noun in "one teddy bear sitting"."""
    resolved = list(words)
    for index, word in enumerate(words):
        before = words[index - 1] if index else None
        after = words[index + 1] if index + 1 < len(words) else None
        if before is None:
            continue
        if (word.lower in _ING_NOUNS and word.lower.endswith("ing") and before.kind == NOUN
                and after is not None and after.kind in {DET, NUM}):
            resolved[index] = replace(word, kind=PARTICIPLE, plural=False)
        elif (word.lower in _VERB_HOMOGRAPH_NOUNS and word.kind in {VERB, PARTICIPLE}
              and before.kind in {NOUN, ADJ} and (after is None or after.kind not in {DET, NUM, PRON})):
            resolved[index] = replace(word, kind=NOUN, plural=word.lower.endswith("s"))
    return resolved


def prompt_words(prompt: str, backend: Backend = "auto") -> list[Word]:
    """The words of the ComfyUI prompt `prompt` (weight markup removed) with word classes, from
    spaCy or (backend="rules" or no model) rules. Raises ValueError for a prompt that is not text
    or an unknown backend."""
    if backend not in ("auto", "spacy", "rules"):
        raise ValueError(f"backend must be 'auto', 'spacy' or 'rules', got {backend!r}")
    text = comfy_prompt_text(prompt)
    nlp = load_spacy_model() if backend != "rules" else None
    if nlp is None:
        if backend == "spacy":
            raise RuntimeError(f"spaCy's English model {SPACY_MODEL_NAME} could not be loaded (see the log)")
        return _resolve_ambiguous(_rule_words(text))
    return _resolve_ambiguous(_spacy_words(text, nlp))


def parse_counts(prompt: str, backend: Backend = "auto") -> dict[str, int]:
    """Counted nouns (surface form of the head noun) → count, in prompt order, for a prompt as
    typed into ComfyUI ("(three:1.2) cats" counts three cats).

    backend="auto" uses spaCy when its model loads and the rules otherwise; "spacy" requires
    the model; "rules" never loads it.
    """
    return extract_counts(prompt_words(prompt, backend))


_QUANTITY_WORDS = set(NUMBER_WORDS) | _ARTICLES | _SINGLE_WORDS | {"of"}


def modifier_phrase(prompt: str, noun: str) -> str:
    """The noun with the modifiers written between its numeral and it, as in the prompt: "red racing cars"
    in "three red racing cars", "hot air-balloons" in "three hot air-balloons". Just the noun when nothing
    stands between, or when the noun is not found as a whole word. `prompt` may carry ComfyUI weight
    markup; the phrase is taken from the text without it."""
    prompt = comfy_prompt_text(prompt)
    match = re.search(rf"(?<!\w){re.escape(noun)}(?!\w)", prompt)
    if match is None:
        return noun
    before = prompt[: match.start()]
    words = list(re.finditer(r"[\w'-]+|[^\w\s]", before))
    start = match.start()
    for word in reversed(words):
        text = word.group().lower()
        if text in _QUANTITY_WORDS or text.isdecimal() or not word.group()[0].isalnum() or text in _COORDINATORS:
            break
        start = word.start()
    return prompt[start : match.end()]
