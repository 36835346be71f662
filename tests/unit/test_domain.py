import pytest

from services.signing.domain import canonical_email, derive_slug, name_problem
from contract.counts import milestones_crossed, milestones_up_to, next_goal


def test_ladder_starts_10_25_50_then_goes_1_2_5():
    assert milestones_up_to(10_000) == [10, 25, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]


@pytest.mark.parametrize(("old", "new", "crossed"), [
    (0, 9, []), (9, 10, [10]), (10, 24, []), (45, 130, [50, 100]), (0, 120, [10, 25, 50, 100]),
    (199, 200, [200]), (200, 200, []), (999, 5000, [1000, 2000, 5000]),
])
def test_every_milestone_crossed_in_one_batch_is_reported(old, new, crossed):
    assert milestones_crossed(old, new) == crossed


@pytest.mark.parametrize(("count", "goal"), [
    (0, 100), (10, 100), (99, 100), (100, 200), (150, 200), (239, 500), (500, 1000), (5911, 10_000),
    (217_903, 500_000),
])
def test_public_goal_is_the_next_ladder_value_from_100_above_the_count(count, goal):
    assert next_goal(count) == goal


@pytest.mark.parametrize(("given", "canonical"), [
    ("Alice@Example.org", "alice@example.org"),
    ("alice+petitions@example.org", "alice@example.org"),
    ("a.lice@example.org", "a.lice@example.org"),
    ("A.Lice+x@gmail.com", "alice@gmail.com"),
    ("a.l.i.c.e@googlemail.com", "alice@gmail.com"),
    (" bob@Example.ORG ", "bob@example.org"),
])
def test_canonical_email(given, canonical):
    assert canonical_email(given) == canonical


@pytest.mark.parametrize("name", ["=SUM(A1)", "+1 555", "-x", "@bob", "see https://x.example", "www.spam.example",
                                  "buy at cheap.com"])
def test_names_that_could_be_formulas_or_links_are_refused(name):
    assert name_problem(name)


@pytest.mark.parametrize("name", ["Patrick Leonard", "Zoë O'Brien-Smith", "李小龙", "J. R. R. Tolkien"])
def test_ordinary_names_are_accepted(name):
    assert name_problem(name) is None


def test_slug_is_derived_from_the_title():
    assert derive_slug("Tell Denver's Mayor to Stop!") == "tell-denvers-mayor-to-stop"
    assert derive_slug("!!!") == "petition"
