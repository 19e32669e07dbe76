"""A group mentioned again is the same group; a new mention adds. The rule: a numeral after a referring
determiner (the, these, those, both, all, or the possessive the group was introduced with; "same"/"first"/
"last" may stand between) names a noun already counted and adds nothing; any other mention is another group."""
from __future__ import annotations

import pytest

from numina_core.numerals import parse_counts

SAME_GROUP = [
    ("Three cats sit on a sofa. The three cats look at the camera.", {"cats": 3}),
    ("Two dogs run across a field; these two dogs are chasing a ball.", {"dogs": 2}),
    ("Four birds perch on a wire. Those four birds take off together.", {"birds": 4}),
    ("Two horses graze in a meadow, and both two horses lift their heads.", {"horses": 2}),
    ("Five balloons float upward. All five balloons are red.", {"balloons": 5}),
    ("Three puppies play in the grass. The same three puppies then nap in the shade.", {"puppies": 3}),
    ("Six candles burn on a cake. Then the first two candles go out.", {"candles": 6}),
    ("A girl walks her two dogs in a park. Her two dogs sniff the flowers.", {"girl": 1, "dogs": 2}),
    # A long expanded prompt that keeps describing its groups.
    ("Three fluffy kittens sit on a wooden table next to two ceramic mugs. The three kittens watch a "
     "butterfly while the two mugs steam gently. The camera slowly circles the three kittens.",
     {"kittens": 3, "mugs": 2}),
    # A definite first mention is still counted.
    ("The two cats sit on a sofa.", {"cats": 2}),
    ("(Three cats:1.2) sit on a sofa. The (three cats) look at the camera.", {"cats": 3}),
]

NEW_GROUPS = [
    ("Two cats on the left and two cats on the right.", {"cats": 4}),
    ("One dog on the left and one dog on the right.", {"dog": 2}),
    ("Two red balloons and three blue balloons float in the sky.", {"balloons": 5}),
    ("Two cats sleep on a bed. Two more cats play on the floor.", {"cats": 4}),
    ("Two dogs sit by the door. Another two dogs run in the yard.", {"dogs": 4}),
    ("Two dogs sit by the door while the other two dogs run in the yard.", {"dogs": 4}),
    ("Three ducks swim in a pond and three ducks rest on the bank.", {"ducks": 6}),
    ("A cat on a sofa and a cat on the floor.", {"cat": 2}),
    ("A woman with her two dogs and a man with his two dogs.", {"woman": 1, "dogs": 4, "man": 1}),
    # A reference to a noun not counted before introduces it.
    ("Three cats sit on a sofa. The two dogs bark.", {"cats": 3, "dogs": 2}),
]


@pytest.mark.parametrize("prompt, expected", SAME_GROUP, ids=[prompt[:45] for prompt, _ in SAME_GROUP])
def test_mentioned_again_is_the_same_group(prompt: str, expected: dict[str, int]):
    assert parse_counts(prompt, backend="rules") == expected


@pytest.mark.parametrize("prompt, expected", NEW_GROUPS, ids=[prompt[:45] for prompt, _ in NEW_GROUPS])
def test_a_new_mention_adds_a_group(prompt: str, expected: dict[str, int]):
    assert parse_counts(prompt, backend="rules") == expected
