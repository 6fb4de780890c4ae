"""No import cycles in `src/birnn`.

The rule: the graph of every import of one birnn module by another (at module
level or inside a function, outside `if TYPE_CHECKING:`) has no cycle. An import
moved into a function still counts: deferring it hides a cycle from the
interpreter, not from a reader. The only edges left out are those in
`_ALLOWED`, each with its reason.
"""

from __future__ import annotations

from tests.structure._imports import cycles, import_edges

# (importer, imported): why the edge may close a cycle.
_ALLOWED = {
    ("birnn.models.model", "birnn.saving.export"): (
        "`Model.export` is Keras's API on the model; the exporter in turn must "
        "recognise nested `Model`/`Sequential` layers."
    ),
}


def _graph(include_function_level: bool = True) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in import_edges():
        if (edge.source, edge.target) in _ALLOWED:
            continue
        if edge.top_level or include_function_level:
            graph.setdefault(edge.source, set()).add(edge.target)
    return graph


def _describe(component: list[str]) -> str:
    lines = [" <-> ".join(component)]
    for edge in import_edges():
        if edge.source in component and edge.target in component:
            where = "module level" if edge.top_level else "in a function"
            lines.append(f"  {edge.source}:{edge.line} imports {edge.target} ({where})")
    return "\n".join(lines)


def test_no_import_cycles() -> None:
    found = cycles(_graph())
    assert not found, "import cycles:\n" + "\n".join(_describe(c) for c in found)


def test_allowed_edges_still_exist() -> None:
    edges = {(e.source, e.target) for e in import_edges()}
    stale = [pair for pair in _ALLOWED if pair not in edges]
    assert not stale, f"allow-listed imports that no longer exist: {stale}"


def test_the_checker_sees_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_reads_function_level_imports() -> None:
    pairs = {(e.source, e.target, e.top_level) for e in import_edges()}
    assert ("birnn.models.model", "birnn.saving.keras_file", False) in pairs
    assert ("birnn.models.functional", "birnn.layers.layer", True) in pairs
