"""Parsing Criteo lines and mapping categorical values, against hand-computed values and
straightforward per-field Python references."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dct.data.criteo_lines import (
    MISSING,
    ValueCounts,
    Vocabulary,
    hash_indices,
    parse_lines,
)

DIGITS = set("0123456789")
HEX_DIGITS = set("0123456789abcdefABCDEF")


def tsv(label: str = "0", ints: list[str] | None = None, cats: list[str] | None = None) -> str:
    return "\t".join([label, *(ints or [""] * 13), *(cats or [""] * 26)])


def reference_kind(text: str) -> str | None:
    """The malformed kind of a line without its newline, by the rules read field by field."""
    fields = text.split("\t")
    if len(fields) != 40:
        return "field_count"
    if fields[0] not in ("0", "1"):
        return "label"
    for field in fields[1:14]:
        digits = field[1:] if field.startswith("-") else field
        if field and not (digits and set(digits) <= DIGITS):
            return "integer"
    for field in fields[14:]:
        if field and not (len(field) == 8 and set(field) <= HEX_DIGITS):
            return "hex"
    return None


def test_values_equal_hand_computed_ones():
    ints = ["0", "1", "2", "-5", "", "10", "007", "-0", "3", "", "", "", "1000000"]
    cats = ["0000000a", "FFFFFFFF", "DeadBeef", "", "68fd1e64"] + ["00000001"] * 21
    parsed = parse_lines([tsv("1", ints, cats) + "\n"])

    ln2, ln3, ln4, ln11 = (
        0.6931471805599453,
        1.0986122886681098,
        1.3862943611198906,
        2.3978952727983707,
    )
    ln8, ln1000001 = 2.0794415416798357, 13.815511557963774
    expected = [0, ln2, ln3, 0, 0, ln11, ln8, 0, ln4, 0, 0, 0, ln1000001]
    assert parsed.labels.dtype == np.uint8 and parsed.labels.tolist() == [1]
    assert parsed.dense.dtype == np.float32 and parsed.dense.shape == (1, 13)
    np.testing.assert_array_equal(parsed.dense[0], np.array(expected, dtype=np.float32))
    assert not np.signbit(parsed.dense[0, 7])  # "-0" is +0.0, byte for byte
    assert parsed.categorical.dtype == np.int64
    assert parsed.categorical[0, :5].tolist() == [10, 4294967295, 3735928559, MISSING, 1761418852]
    assert parsed.bad == []


def test_integers_too_long_for_int64():
    ints = ["9" * 30, "-" + "9" * 25, "1" + "0" * 18, "9" * 18, "0" * 40 + "7"] + [""] * 8
    parsed = parse_lines([tsv("0", ints)])

    ln10 = 2.302585092994046
    expected = [30 * ln10, 0, 18 * ln10, 18 * ln10, 2.0794415416798357] + [0] * 8
    np.testing.assert_array_equal(parsed.dense[0], np.array(expected, np.float32))


def test_line_endings_and_bytes_give_the_same_values():
    text = tsv("1", ["3"] + [""] * 12, ["aBcDeF01"] * 26)
    variants = [text, text + "\n", text + "\r\n", (text + "\r\n").encode(), (text + "\n").encode()]
    parsed = parse_lines(variants)
    assert parsed.bad == []
    assert parsed.labels.tolist() == [1] * 5
    assert (parsed.categorical == 0xABCDEF01).all()
    assert (parsed.dense[:, 0] == np.float32(1.3862943611198906)).all()  # ln 4
    assert (parsed.dense[:, 1:] == 0).all()


def test_an_empty_last_c_field_before_crlf_is_missing():
    parsed = parse_lines([tsv("0", cats=["12345678"] * 25 + [""]) + "\r\n"])
    assert parsed.bad == [] and parsed.categorical[0, -1] == MISSING


@pytest.mark.parametrize(
    "line, kind",
    [
        ("", "field_count"),
        ("\n", "field_count"),
        (tsv() + "\t\n", "field_count"),  # a trailing tab is a 41st field
        ("\t".join(["0"] * 39) + "\n", "field_count"),
        (tsv().replace("\t", " ") + "\n", "field_count"),
        (tsv(label="2"), "label"),
        (tsv(label=""), "label"),
        (tsv(label="01"), "label"),
        (tsv(label=" 1"), "label"),
        (tsv(label="2", ints=["x"] * 13, cats=["q"] * 26), "label"),  # the first rule broken
        (tsv(ints=["1.5"] + [""] * 12), "integer"),
        (tsv(ints=[""] * 12 + ["+3"]), "integer"),
        (tsv(ints=[" 3"] + [""] * 12), "integer"),
        (tsv(ints=["-"] + [""] * 12), "integer"),
        (tsv(ints=["1e3"] + [""] * 12), "integer"),
        (tsv(ints=["1_000"] + [""] * 12), "integer"),
        (tsv(ints=["٣"] + [""] * 12), "integer"),  # a non-ASCII digit
        (tsv(ints=["0x10"] + [""] * 12, cats=["zz"] * 26), "integer"),
        (tsv(cats=["1234567"] + [""] * 25), "hex"),
        (tsv(cats=[""] * 25 + ["123456789"]), "hex"),
        (tsv(cats=["0x123456"] + [""] * 25), "hex"),  # int(_, 16) would take it
        (tsv(cats=["1234_567"] + [""] * 25), "hex"),
        (tsv(cats=["ghijklmn"] + [""] * 25), "hex"),
        (tsv(cats=[""] * 25 + ["12345678"]) + "\r", "hex"),  # a lone CR is not a line ending
        (tsv(cats=[""] * 25 + ["12345678"]) + "\r\r\n", "hex"),
    ],
)
def test_each_malformed_kind(line, kind):
    good = tsv("1", ["5"] + [""] * 12, ["0000000f"] * 26) + "\n"
    parsed = parse_lines([good, line, good])
    assert parsed.bad == [(1, kind)]
    assert parsed.labels.tolist() == [1, 1]  # the bad line is skipped whole
    assert (parsed.categorical == 15).all()


def test_an_empty_chunk_and_an_all_bad_chunk_give_empty_arrays():
    for lines in ([], ["oops\n"]):
        parsed = parse_lines(lines)
        assert parsed.labels.shape == (0,) and parsed.labels.dtype == np.uint8
        assert parsed.dense.shape == (0, 13) and parsed.dense.dtype == np.float32
        assert parsed.categorical.shape == (0, 26) and parsed.categorical.dtype == np.int64


def test_bytes_that_are_not_utf8_raise():
    with pytest.raises(UnicodeDecodeError):
        parse_lines([tsv().encode(), b"\xff\xfe\x00binary\n"])


integer_fields = st.one_of(
    st.just(""),
    st.integers(-(10**6), 10**6).map(str),
    st.integers(-(10**25), 10**25).map(str),  # also past int64
)
hex_fields = st.one_of(
    st.just(""), st.text(alphabet="0123456789abcdefABCDEF", min_size=8, max_size=8)
)
valid_lines = st.tuples(
    st.sampled_from(["0", "1"]),
    st.lists(integer_fields, min_size=13, max_size=13),
    st.lists(hex_fields, min_size=26, max_size=26),
    st.sampled_from(["", "\n", "\r\n"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(valid_lines, max_size=12))
def test_valid_lines_parse_as_a_per_field_reference(lines):
    parsed = parse_lines([tsv(label, ints, cats) + end for label, ints, cats, end in lines])

    assert parsed.bad == []
    assert parsed.labels.tolist() == [int(label) for label, *_ in lines]
    dense = [[math.log1p(max(int(x), 0)) if x else 0.0 for x in ints] for _, ints, _, _ in lines]
    np.testing.assert_array_equal(parsed.dense, np.array(dense, np.float32).reshape(-1, 13))
    cats = [[int(h, 16) if h else MISSING for h in cats] for _, _, cats, _ in lines]
    np.testing.assert_array_equal(parsed.categorical, np.array(cats, np.int64).reshape(-1, 26))


noise = st.text(alphabet="0129aF-+x .\r\t", max_size=9)


@st.composite
def noisy_lines(draw) -> str:
    """A valid line with up to two fields replaced by noise, and maybe a field more or less."""
    label, ints, cats, end = draw(valid_lines)
    fields = [label, *ints, *cats]
    for _ in range(draw(st.integers(0, 2))):
        fields[draw(st.integers(0, 39))] = draw(noise)
    resize = draw(st.sampled_from([-1, 0, 0, 0, 1]))
    fields = fields[:resize] if resize < 0 else fields + ["1"] * resize
    return "\t".join(fields) + end


@settings(max_examples=100, deadline=None)
@given(st.lists(noisy_lines(), max_size=8))
def test_malformed_lines_are_classified_as_a_per_field_reference(lines):
    parsed = parse_lines(lines)

    ends = [2 if line.endswith("\r\n") else int(line.endswith("\n")) for line in lines]
    kinds = [reference_kind(line[: len(line) - end]) for line, end in zip(lines, ends)]
    assert parsed.bad == [(i, kind) for i, kind in enumerate(kinds) if kind is not None]
    assert len(parsed.labels) == kinds.count(None)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([MISSING, 0, 1, 7, 2**32 - 1, 99]), max_size=30), max_size=8),
    st.integers(1, 4),
)
def test_vocabulary_follows_the_rule_over_many_chunks(chunks, min_count):
    counts = ValueCounts()
    for chunk in chunks:
        counts.add(np.array(chunk, np.int64))
    columns = [counts] + [ValueCounts() for _ in range(25)]
    vocabulary = Vocabulary.from_counts(columns, min_count)

    seen = Counter(v for chunk in chunks for v in chunk if v != MISSING)
    frequent = sorted((v for v, n in seen.items() if n >= min_count), key=lambda v: (-seen[v], v))
    expected = {v: i + 1 for i, v in enumerate(frequent)}
    assert vocabulary.table_sizes() == [1 + len(frequent)] + [1] * 25
    raw = np.full((6, 26), MISSING, np.int64)
    raw[:, 0] = [MISSING, 0, 1, 7, 2**32 - 1, 99]
    indices = vocabulary.indices(raw)
    assert indices.dtype == np.int32
    assert indices[:, 0].tolist() == [expected.get(v, 0) for v in raw[:, 0]]
    assert (indices[:, 1:] == 0).all()


def test_vocabulary_orders_by_count_then_value():
    counts = ValueCounts()
    counts.add(np.array([5, 5, 3, 3, 9, 9, 9, 1, MISSING, MISSING, MISSING], np.int64))
    vocabulary = Vocabulary.from_counts([counts] + [ValueCounts() for _ in range(25)], 2)
    raw = np.zeros((5, 26), np.int64)
    raw[:, 0] = [9, 3, 5, 1, MISSING]
    assert vocabulary.indices(raw)[:, 0].tolist() == [1, 2, 3, 0, 0]  # 9 thrice; 3, 5 twice
    assert vocabulary.table_sizes()[0] == 4


@given(st.lists(st.one_of(st.just(MISSING), st.integers(0, 2**32 - 1)), max_size=26))
def test_hash_indices_follow_the_rule(values):
    raw = np.array(values, np.int64).reshape(-1, 1)
    for size in (2, 3, 1000, 2**31):
        expected = [0 if v == MISSING else 1 + v % (size - 1) for v in values]
        indices = hash_indices(raw, size)
        assert indices.dtype == np.int32 and indices[:, 0].tolist() == expected


def test_hash_indices_of_known_values():
    raw = np.array([[MISSING, 0, 0x68FD1E64, 0xFFFFFFFF]], np.int64)
    # 1761418852 = 999 * 1763182 + 34; 4294967295 = 999 * 4299266 + 561
    assert hash_indices(raw, 1000).tolist() == [[0, 1, 35, 562]]
