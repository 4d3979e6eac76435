"""Claims the chaos guide makes about the whole suite, checked against what pytest really collects."""

from __future__ import annotations

from pggit_chaos.measure.progression import Progression

from tests.ci.workflows import collected_marks


def chaos_tests_without_a_category(marks: dict[str, frozenset[str]], categories: frozenset[str]) -> list[str]:
    """The tests marked ``chaos`` that carry none of the category markers."""
    return sorted(nodeid for nodeid, own in marks.items() if "chaos" in own and not own & categories)


def test_every_chaos_test_carries_a_category_marker():
    """The guide: every chaos test is marked ``chaos`` and with at least one category, so that every
    tier, progression rule and manual category choice can find it. Page tests count too."""
    categories = frozenset(Progression.load().categories)
    marks = collected_marks()
    chaos = [nodeid for nodeid, own in marks.items() if "chaos" in own]
    assert len(chaos) > 300, f"only {len(chaos)} chaos tests collected: the collection is not the suite's"
    # The check itself: a chaos test with no category is found, one with a category is not.
    assert chaos_tests_without_a_category({"a": frozenset({"chaos"}), "b": frozenset({"chaos", "crash"})},
                                          categories) == ["a"]
    missing = chaos_tests_without_a_category(marks, categories)
    assert not missing, f"chaos tests without a category marker ({sorted(categories)}): {missing}"
