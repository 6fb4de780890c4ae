"""`Model.summary`: `expand_nested`, `layer_range`, `positions` and `line_length` next to
Keras's table (layer names, output shapes, parameter counts, connections)."""

from __future__ import annotations

import pytest

import birnn
from tests.keras_oracle import keras

WIDE = 180  # wide enough that no cell wraps, so one table line is one row


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Both libraries narrow the table to the terminal; give them room."""
    monkeypatch.setenv("COLUMNS", "250")


def _sequential(lib):
    inner = lib.Sequential(
        [lib.Input((6,)), lib.layers.Dense(4, name="hidden"), lib.layers.Dense(3, name="proj")],
        name="inner",
    )
    return lib.Sequential(
        [
            lib.Input((5, 3)),
            lib.layers.Bidirectional(lib.layers.LSTM(3), name="bi"),
            inner,
            lib.layers.Dense(2, name="head"),
        ],
        name="outer_seq",
    )


def _functional(lib):
    """A graph (so "Connected to" shows) holding a model that holds a model."""
    deepest = lib.Sequential([lib.Input((3,)), lib.layers.Dense(3, name="deep")], name="deepest")
    inner = lib.Sequential(
        [lib.Input((4,)), lib.layers.Dense(3, name="d_in"), deepest], name="inner"
    )
    x = lib.Input((4,), name="inp")
    a = inner(x)
    b = lib.layers.Dense(3, name="side")(x)
    frozen = lib.layers.Dense(2, name="frozen")
    frozen.trainable = False
    out = frozen(lib.layers.Concatenate(name="cat")([a, b]))
    return lib.Model(x, out, name="outer_fn")


def _lines(model, **kwargs) -> list[str]:
    out: list[str] = []
    model.summary(print_fn=lambda line, **_: out.append(line), **kwargs)
    return "\n".join(out).splitlines()


def _rows(model, **kwargs) -> list[list[str]]:
    """The body rows' cells, with the nested rows' indentation kept."""
    kwargs.setdefault("line_length", WIDE)
    rows = []
    for line in _lines(model, **kwargs):
        if line.startswith("│"):
            cells = line.strip("│").split("│")
            rows.append([cells[0][1:].rstrip(), *(c.strip() for c in cells[1:])])
    return rows


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"expand_nested": True},
        {"expand_nested": True, "show_trainable": True},
    ],
    ids=["flat", "expand_nested", "expand_nested+trainable"],
)
def test_rows_match_keras(build, kwargs):
    ours, theirs = _rows(build(birnn), **kwargs), _rows(build(keras), **kwargs)
    assert ours == theirs
    assert len(ours) >= 3


def test_frozen_nested_model_marks_its_layers_like_keras():
    def rows(lib):
        model = _functional(lib)
        model.get_layer("inner").trainable = False
        return _rows(model, expand_nested=True, show_trainable=True)

    ours = rows(birnn)
    assert ours == rows(keras)
    assert ["      └ deep (Dense)", "(None, 3)", "12", "-", "N"] in ours


def test_expand_nested_indents_each_level_and_keeps_wrappers_whole():
    names = [row[0] for row in _rows(_functional(birnn), expand_nested=True)]
    assert "   └ d_in (Dense)" in names and "      └ deep (Dense)" in names
    bi_rows = [row[0] for row in _rows(_sequential(birnn), expand_nested=True)]
    assert "bi (Bidirectional)" in bi_rows and not any("LSTM" in n for n in bi_rows)


@pytest.mark.parametrize(
    "layer_range",
    [
        ("cat", "frozen"),
        ["inp", "side"],
        ("frozen", "inner"),  # the span covers every match, in either order
        ("s", "s"),  # entries are regular expressions matched at the name's start
        ("inner", "inner"),
    ],
)
@pytest.mark.parametrize("expand_nested", [False, True])
def test_layer_range_matches_keras(layer_range, expand_nested):
    kwargs = {"layer_range": layer_range, "expand_nested": expand_nested}
    ours = _rows(_functional(birnn), **kwargs)
    assert ours == _rows(_functional(keras), **kwargs)
    # the totals still cover the whole model
    assert [line for line in _lines(_functional(birnn), **kwargs) if "params:" in line] == [
        line for line in _lines(_functional(keras), **kwargs) if "params:" in line
    ]


@pytest.mark.parametrize(
    ("layer_range", "match"),
    [
        (("inp",), r"list or tuple of two layer names.*length 1"),
        ("inp", r"list or tuple of two layer names.*length 3"),
        (("inp", "cat", "side"), "length 3"),
        ((0, 2), r"two layer names \(strings\); received \(0, 2\)"),
        (("inp", None), "two layer names"),
        (("nope", "cat"), r"'nope' matches none of the model's layer names \['inp'"),
        (("inp", "d_in"), "'d_in' matches none"),  # nested layers are not in the range
    ],
)
def test_layer_range_errors_where_keras_errors(layer_range, match):
    with pytest.raises(ValueError, match=match):
        _functional(birnn).summary(print_fn=lambda line: None, layer_range=layer_range)
    with pytest.raises(ValueError):
        _functional(keras).summary(print_fn=lambda *a, **k: None, layer_range=layer_range)


def test_a_two_character_string_is_not_read_as_a_range():
    """Keras reads "ab" as ("a", "b"); birnn refuses it as the likely mistake it is."""
    with pytest.raises(ValueError, match="length 2"):
        _functional(birnn).summary(print_fn=lambda line: None, layer_range="is")


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
@pytest.mark.parametrize("show_trainable", [False, True])
@pytest.mark.parametrize("line_length", [70, 120])
def test_table_fills_line_length_like_keras(build, show_trainable, line_length):
    def widths(lib):
        top = _lines(build(lib), line_length=line_length, show_trainable=show_trainable)[1]
        return len(top), len(top.split("┳"))

    assert widths(birnn) == widths(keras) == (line_length, widths(keras)[1])


def test_positions_set_the_column_edges():
    top = _lines(_sequential(birnn), line_length=100, positions=[0.3, 0.6, 1.0])[1]
    first, second, third = (len(c) for c in top.strip("┏┓").split("┳"))
    assert first + second + third + 4 == 100
    assert abs(first - second) <= 1 and third > first  # shares 0.3, 0.3, 0.4
    absolute = _lines(_sequential(birnn), line_length=100, positions=[30, 60, 100])[1]
    assert absolute == top


@pytest.mark.parametrize(
    ("positions", "error", "match"),
    [
        ([0.5, 1.0], ValueError, "needs at least 3 entries"),
        ([0.5, 0.4, 1.0], ValueError, "must increase"),
        ("0.5", TypeError, "list of numbers"),
    ],
)
def test_bad_positions_are_refused_with_the_argument_named(positions, error, match):
    with pytest.raises(error, match=match):
        _sequential(birnn).summary(print_fn=lambda line: None, positions=positions)
