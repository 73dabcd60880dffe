"""Embedding indexes of whole archives and search by example (issue 31: ``birdspec index``, ``birdspec search``).

``embedders`` (BirdNET, or a birdspec run's penultimate features, on prediction's windows) -> ``build`` (the
resumable, parallel archive run of ``birdspec predict``'s ledger, then consolidation) -> ``index_store`` (the
on-disk layout, :class:`~birdspec.similarity.index_store.SimilarityIndex`) -> ``query`` (exact NumPy search, or
approximate search over ``ann``'s usearch HNSW graph, ``birdspec[index]``). Nothing heavy is imported here.
"""

from __future__ import annotations

from birdspec.lazy import lazy_exports

_EXPORTS = {
    "build_index": "birdspec.similarity.build",
    "SimilarityIndex": "birdspec.similarity.index_store",
    "search": "birdspec.similarity.query",
    "search_vector": "birdspec.similarity.query",
    "open_embedder": "birdspec.similarity.embedders",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports("birdspec.similarity", _EXPORTS)
