"""An embedded translation task: dates in words to ISO dates.

Made by code from a seed, so it needs no files and no network. Each source is
an English date in one of several surface forms; the target is its ISO form:

    "the twenty third of march nineteen ninety four"  ->  "1994-03-23"
    "wednesday , march 23 , 1994"                     ->  "1994-03-23"

Sources are written the way D2L's preprocessing leaves text (lower case, a
space before `,`), so a `WordTokenizer` splits them into words, and the target
is read character by character. Each output character comes from one or two
source words (the month's digits from the month name, the year's from the
year words), so attention heatmaps show a clear alignment.
"""

import datetime
import random

from keras_attention.data import _checks

FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
MONTH_ABBREVIATIONS = tuple(m[:3] for m in MONTHS)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = {
    2: "twenty",
    3: "thirty",
    4: "forty",
    5: "fifty",
    6: "sixty",
    7: "seventy",
    8: "eighty",
    9: "ninety",
}
_ORDINAL_ONES = (
    "zeroth",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
)
_ORDINAL_TENS = {2: "twentieth", 3: "thirtieth"}


def number_words(n):
    """0..99 in words, without hyphens: 94 -> "ninety four"."""
    if not 0 <= n <= 99:
        raise ValueError(f"`n` must be in 0..99; got n={n}.")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] if ones == 0 else f"{_TENS[tens]} {_ONES[ones]}"


def ordinal_words(n):
    """1..31 as an ordinal in words: 23 -> "twenty third"."""
    if not 1 <= n <= 31:
        raise ValueError(f"`n` must be in 1..31; got n={n}.")
    if n < 20:
        return _ORDINAL_ONES[n]
    tens, ones = divmod(n, 10)
    return _ORDINAL_TENS[tens] if ones == 0 else f"{_TENS[tens]} {_ORDINAL_ONES[ones]}"


def ordinal_suffix(n):
    """23 -> "23rd", 11 -> "11th"."""
    if 11 <= n % 100 <= 13:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def year_words(year):
    """1900..2099 the way it is read aloud.

    1900 "nineteen hundred", 1905 "nineteen oh five", 1994 "nineteen ninety
    four", 2000 "two thousand", 2005 "two thousand and five", 2023 "twenty
    twenty three".
    """
    if not FIRST_DATE.year <= year <= LAST_DATE.year:
        raise ValueError(f"`year` must be in 1900..2099; got year={year}.")
    century, rest = divmod(year, 100)
    if century == 19:
        if rest == 0:
            return "nineteen hundred"
        if rest < 10:
            return f"nineteen oh {_ONES[rest]}"
        return f"nineteen {number_words(rest)}"
    if rest == 0:
        return "two thousand"
    if rest < 10:
        return f"two thousand and {_ONES[rest]}"
    return f"twenty {number_words(rest)}"


def _month(date):
    return MONTHS[date.month - 1]


def _weekday(date):
    return WEEKDAYS[date.weekday()]


# Each surface form: a name and a function of a `datetime.date`.
DATE_FORMS = {
    "month_day_year": lambda d: f"{_month(d)} {d.day} , {d.year}",
    "day_month_year": lambda d: f"{d.day} {_month(d)} {d.year}",
    "abbreviated": lambda d: f"{MONTH_ABBREVIATIONS[d.month - 1]} {d.day} {d.year}",
    "ordinal": lambda d: f"the {ordinal_suffix(d.day)} of {_month(d)} , {d.year}",
    "weekday": lambda d: f"{_weekday(d)} , {_month(d)} {d.day} , {d.year}",
    "spelled_out": lambda d: f"the {ordinal_words(d.day)} of {_month(d)} {year_words(d.year)}",
    "spelled_out_weekday": lambda d: (
        f"{_weekday(d)} {_month(d)} the {ordinal_words(d.day)} , {year_words(d.year)}"
    ),
}


def format_date(date, form):
    """One date in one surface form, e.g. `format_date(date(1994, 3, 23), "spelled_out")`."""
    if form not in DATE_FORMS:
        raise ValueError(f"`form` must be one of {sorted(DATE_FORMS)}; got form={form!r}.")
    return DATE_FORMS[form](date)


def generate_dates(num_examples, seed=0, forms=None):
    """Random (source, target) date pairs, with distinct sources.

    Dates are drawn uniformly from 1900-01-01 to 2099-12-31 and forms uniformly
    from `forms`; the same `seed` gives the same list on every machine.

    Args:
        num_examples: int. How many pairs.
        seed: int. Seed of the `random.Random` that draws them. Defaults to `0`.
        forms: list[str]. Names from `DATE_FORMS`. Defaults to all of them.

    Returns:
        list of `(source, target)` strings, e.g.
        `("the twenty third of march nineteen ninety four", "1994-03-23")`.

    Example:
        >>> generate_dates(2, seed=0)[0]
        ('thursday , april 1 , 2038', '2038-04-01')
    """
    num_examples = _checks.check_non_negative_int("num_examples", num_examples)
    seed = _checks.check_int("seed", seed)
    forms = sorted(DATE_FORMS) if forms is None else _checks.check_strings("forms", forms)
    if not forms:
        raise ValueError(
            f"`forms` must name at least one form of {sorted(DATE_FORMS)}; got forms=[]."
        )
    for form in forms:
        if form not in DATE_FORMS:
            raise ValueError(f"`forms` must hold names from {sorted(DATE_FORMS)}; got {form!r}.")
    num_days = (LAST_DATE - FIRST_DATE).days + 1
    if num_examples > num_days * len(forms):
        raise ValueError(
            f"`num_examples` must be in 0..{num_days * len(forms)}; got num_examples={num_examples}."
        )
    rng = random.Random(seed)
    pairs, seen = [], set()
    while len(pairs) < num_examples:
        date = FIRST_DATE + datetime.timedelta(days=rng.randrange(num_days))
        source = format_date(date, forms[rng.randrange(len(forms))])
        if source not in seen:
            seen.add(source)
            pairs.append((source, date.isoformat()))
    return pairs


def source_words():
    """Every word any source can contain, sorted."""
    words = set()
    for year in range(FIRST_DATE.year, LAST_DATE.year + 1):
        date = datetime.date(year, 1, 1)
        for form in DATE_FORMS:
            words.update(format_date(date, form).split(" "))
    for offset in range(31 + 7):  # every day of the month, every weekday
        date = datetime.date(2001, 1, 1) + datetime.timedelta(days=offset)
        for month in range(1, 13):
            day = min(date.day, 28)
            for d in (date, date.replace(month=month, day=day)):
                for form in DATE_FORMS:
                    words.update(format_date(d, form).split(" "))
    return sorted(words)


TARGET_CHARS = tuple("-0123456789")
