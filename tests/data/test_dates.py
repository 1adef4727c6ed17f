import collections
import datetime
import re

import pytest

from keras_attention.data import dates
from keras_attention.data.dates import (
    DATE_FORMS,
    format_date,
    generate_dates,
    ordinal_suffix,
    source_words,
    year_words,
)

# ---------------------------------------------------------------- an independent reader

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        "january february march april may june july august september october november december".split()
    )
}
_MONTHS.update({m[:3]: n for m, n in list(_MONTHS.items())})
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_SMALL = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * (i + 2)
    for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fifth": 5,
    "eighth": 8,
    "ninth": 9,
    "twelfth": 12,
    "twentieth": 20,
    "thirtieth": 30,
}
for _word, _value in _SMALL.items():
    if _value >= 4 and _value not in (5, 8, 9, 12):
        _ORDINALS[_word + "th"] = _value


def _cardinal(words):
    """["ninety", "four"] -> 94; ["seven"] -> 7."""
    total = 0
    for w in words:
        total += _TENS[w] if w in _TENS else _SMALL[w]
    return total


def _ordinal(words):
    """["twenty", "third"] -> 23."""
    return _cardinal(words[:-1]) + _ORDINALS[words[-1]]


def _spoken_year(words):
    if words[:2] == ["two", "thousand"]:
        rest = [w for w in words[2:] if w != "and"]
        return 2000 + _cardinal(rest)
    century = {"nineteen": 1900, "twenty": 2000}[words[0]]
    rest = words[1:]
    if rest == ["hundred"]:
        return century
    if rest[0] == "oh":
        return century + _cardinal(rest[1:])
    return century + _cardinal(rest)


def read_date(source):
    """Reads any generated source back into (date, weekday or None)."""
    words = [w for w in source.split(" ") if w not in (",", "the", "of")]
    weekday = None
    if words[0] in _WEEKDAYS:
        weekday, words = words[0], words[1:]
    (month_at,) = [i for i, w in enumerate(words) if w in _MONTHS]
    month = _MONTHS[words[month_at]]
    rest = words[:month_at] + words[month_at + 1 :]
    if all(re.fullmatch(r"\d+(st|nd|rd|th)?", w) for w in rest):
        assert len(rest) == 2
        day_word, year_word = rest
        day = int(re.match(r"\d+", day_word).group())
        if m := re.fullmatch(r"\d+(st|nd|rd|th)", day_word):
            assert m.group(1) == {1: "st", 2: "nd", 3: "rd"}.get(
                day % 10 if day not in (11, 12, 13) else 0, "th"
            )
        year = int(year_word)
    else:
        end = next(i for i, w in enumerate(rest) if w in _ORDINALS) + 1
        day, year = _ordinal(rest[:end]), _spoken_year(rest[end:])
    return datetime.date(year, month, day), weekday  # raises on an invalid calendar date


def _weekday_name(date):
    # 1900-01-01 was a Monday.
    return _WEEKDAYS[(date - datetime.date(1900, 1, 1)).days % 7]


# ---------------------------------------------------------------- tests


def test_generation_is_deterministic_per_seed():
    assert generate_dates(300, seed=3) == generate_dates(300, seed=3)
    assert generate_dates(300, seed=3) != generate_dates(300, seed=4)
    # A longer list extends a shorter one with the same seed.
    assert generate_dates(500, seed=3)[:300] == generate_dates(300, seed=3)


def test_every_target_is_the_iso_form_of_its_source():
    pairs = generate_dates(5000, seed=0)
    assert len({s for s, _ in pairs}) == 5000  # distinct sources
    seen_weekdays = 0
    for source, target in pairs:
        assert re.fullmatch(r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", target), target
        date, weekday = read_date(source)
        assert date.isoformat() == target, source
        assert datetime.date(1900, 1, 1) <= date <= datetime.date(2099, 12, 31)
        if weekday is not None:
            seen_weekdays += 1
            assert weekday == _weekday_name(date), source
    assert seen_weekdays > 1000


def test_forms_and_years_are_spread():
    pairs = generate_dates(7000, seed=1)
    counts = collections.Counter()
    for source, _ in pairs:
        for name in DATE_FORMS:
            date, _ = read_date(source)
            if format_date(date, name) == source:
                counts[name] += 1
    assert set(counts) == set(DATE_FORMS) and len(DATE_FORMS) >= 4
    assert min(counts.values()) > 7000 / len(DATE_FORMS) * 0.8
    years = collections.Counter(int(t[:4]) for _, t in pairs)
    assert min(years) <= 1905 and max(years) >= 2094
    assert sum(1 for _, t in pairs if t[5:] == "02-29") > 0  # leap days occur


def test_surface_forms_of_one_date():
    d = datetime.date(1994, 3, 23)  # a Wednesday
    assert {name: format_date(d, name) for name in DATE_FORMS} == {
        "month_day_year": "march 23 , 1994",
        "day_month_year": "23 march 1994",
        "abbreviated": "mar 23 1994",
        "ordinal": "the 23rd of march , 1994",
        "weekday": "wednesday , march 23 , 1994",
        "spelled_out": "the twenty third of march nineteen ninety four",
        "spelled_out_weekday": "wednesday march the twenty third , nineteen ninety four",
    }


@pytest.mark.parametrize(
    "year, words",
    [
        (1900, "nineteen hundred"),
        (1905, "nineteen oh five"),
        (1910, "nineteen ten"),
        (1999, "nineteen ninety nine"),
        (2000, "two thousand"),
        (2007, "two thousand and seven"),
        (2010, "twenty ten"),
        (2023, "twenty twenty three"),
        (2099, "twenty ninety nine"),
    ],
)
def test_year_words(year, words):
    assert year_words(year) == words
    assert _spoken_year(words.split()) == year


def test_spoken_numbers_read_back_for_every_value():
    for year in range(1900, 2100):
        assert _spoken_year(year_words(year).split()) == year
    for day in range(1, 32):
        assert _ordinal(dates.ordinal_words(day).split()) == day
    assert [ordinal_suffix(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 30, 31)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "30th",
        "31st",
    ]


def test_source_words_cover_every_generated_word():
    vocab = set(source_words())
    for source, _ in generate_dates(3000, seed=5):
        assert set(source.split(" ")) <= vocab
    assert {"nineteen", "thirtieth", "31st", "sep", "sunday", "2099", "oh", "and"} <= vocab


def test_forms_argument_and_errors():
    only = generate_dates(50, seed=0, forms=["spelled_out"])
    assert all(s.startswith("the ") and not any(c.isdigit() for c in s) for s, _ in only)
    with pytest.raises(ValueError, match="`forms` must hold names from"):
        generate_dates(5, forms=["roman"])
    with pytest.raises(ValueError, match="`form` must be one of"):
        format_date(datetime.date(2000, 1, 1), "roman")
    with pytest.raises(ValueError, match="`num_examples` must be in 0..73049"):
        generate_dates(10**6, forms=["abbreviated"])
    with pytest.raises(ValueError, match="`year` must be in 1900..2099; got year=2100"):
        year_words(2100)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"num_examples": -1},
            "`num_examples` must be a non-negative integer; got num_examples=-1",
        ),
        (
            {"num_examples": 2.5},
            "`num_examples` must be a non-negative integer; got num_examples=2.5",
        ),
        (
            {"num_examples": True},
            "`num_examples` must be a non-negative integer; got num_examples=True",
        ),
        ({"seed": "a"}, "`seed` must be an integer; got seed='a'"),
        ({"seed": 1.5}, "`seed` must be an integer; got seed=1.5"),
        ({"forms": "weekday"}, "`forms` must be a list of str; got forms='weekday'"),
        ({"forms": []}, "`forms` must name at least one form"),
    ],
)
def test_generate_dates_names_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_dates(**{"num_examples": 5, **kwargs})


def test_generate_dates_takes_numpy_integers():
    import numpy as np

    assert generate_dates(np.int64(3), seed=np.int64(1)) == generate_dates(3, seed=1)
