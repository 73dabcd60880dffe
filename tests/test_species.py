"""Species selection by code, scientific or common name, and top N."""

from __future__ import annotations

import pandas as pd
import pytest

from birdspec.data.species import (
    normalize_name,
    resolve_species,
    select_species,
    species_table,
    split_names,
    top_species,
)
from birdspec.errors import ConfigError, DataError


def _catalog(counts: dict[str, int], names: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    rows = []
    for label, n in counts.items():
        sci, common = (names or {}).get(label, ("", ""))
        rows += [
            {"label": label, "scientific_name": sci, "common_name": common, "filename": f"{label}/{i}.wav"}
            for i in range(n)
        ]
    return pd.DataFrame(rows)


WARBLERS = _catalog(
    {"grrwar1": 27, "blrwar1": 24, "marwar3": 24, "sedwar1": 23, "eurwar1": 5},
    {
        "grrwar1": ("Acrocephalus arundinaceus", "Great Reed Warbler"),
        "blrwar1": ("Acrocephalus dumetorum", "Blyth's Reed Warbler"),
        "marwar3": ("Acrocephalus palustris", "Marsh Warbler"),
        "sedwar1": ("Acrocephalus schoenobaenus", "Sedge Warbler"),
        "eurwar1": ("Acrocephalus scirpaceus", "Eurasian Reed Warbler"),
    },
)


def test_normalize_and_split():
    assert normalize_name("  Blyth's_Reed-Warbler ") == "blyths reed warbler"
    assert normalize_name("MARSH   WARBLER") == "marsh warbler"
    assert split_names("a, b ,,c") == ["a", "b", "c"]
    assert split_names(["a,b", "c"]) == ["a", "b", "c"]


def test_species_table():
    t = species_table(WARBLERS)
    assert list(t["label"]) == sorted(t["label"])
    row = t.set_index("label").loc["marwar3"]
    assert row["scientific_name"] == "Acrocephalus palustris"
    assert row["count"] == 24


@pytest.mark.parametrize(
    "query",
    ["marwar3", "MARWAR3", "Acrocephalus palustris", "acrocephalus_palustris", "marsh warbler", "Marsh-Warbler"],
)
def test_resolve_one_by_any_name(query):
    assert resolve_species(query, species_table(WARBLERS)) == ["marwar3"]


def test_resolve_many_sorted_and_deduplicated():
    table = species_table(WARBLERS)
    assert resolve_species("sedge warbler, grrwar1,Acrocephalus arundinaceus", table) == ["grrwar1", "sedwar1"]
    assert resolve_species(["blyths reed warbler"], table) == ["blrwar1"]


def test_unknown_species_suggests_close_matches():
    with pytest.raises(ConfigError) as err:
        resolve_species("Acrocephalus nonexistens", species_table(WARBLERS))
    msg = str(err.value)
    assert msg.startswith("unknown species 'Acrocephalus nonexistens'; did you mean: ")
    assert "(marwar3)" in msg or "(grrwar1)" in msg
    with pytest.raises(ConfigError, match=r"did you mean: .*Marsh Warbler \(marwar3\)"):
        resolve_species("marsh warblr", species_table(WARBLERS))
    with pytest.raises(ConfigError, match="no close match among the 5 species"):
        resolve_species("zzzzzz", species_table(WARBLERS))
    with pytest.raises(ConfigError, match="empty"):
        resolve_species(" , ", species_table(WARBLERS))


def test_folder_labels_are_the_names():
    table = species_table(_catalog({"Owl_A": 3, "owl b": 2}))
    assert resolve_species("owl a", table) == ["Owl_A"]
    with pytest.raises(ConfigError, match="did you mean: .*Owl_A"):
        resolve_species("owl c", table)


def test_ambiguous_name():
    cat = _catalog({"a1": 1, "a2": 1}, {"a1": ("X y", "Same"), "a2": ("X z", "Same")})
    with pytest.raises(ConfigError, match="ambiguous"):
        resolve_species("same", species_table(cat))


def test_top_n_ties_by_label():
    table = species_table(WARBLERS)
    assert top_species(table, 1) == ["grrwar1"]
    assert top_species(table, 2) == ["blrwar1", "grrwar1"]  # blrwar1 and marwar3 tie at 24
    assert top_species(table, 3) == ["blrwar1", "grrwar1", "marwar3"]
    assert len(top_species(table, 99)) == 5
    with pytest.raises(ConfigError):
        top_species(table, 0)


def test_select_species():
    sel, labels = select_species(WARBLERS, species="sedwar1,Marsh Warbler")
    assert labels == ["marwar3", "sedwar1"]
    assert len(sel) == 47 and set(sel["label"]) == set(labels)
    sel, labels = select_species(WARBLERS, top_n=2)
    assert labels == ["blrwar1", "grrwar1"]
    sel, labels = select_species(WARBLERS, species="eurwar1,sedwar1,marwar3", top_n=2)
    assert labels == ["marwar3", "sedwar1"]
    sel, labels = select_species(WARBLERS)
    assert len(labels) == 5 and len(sel) == len(WARBLERS)
    with pytest.raises(DataError):
        select_species(WARBLERS.iloc[:0])
