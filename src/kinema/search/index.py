"""The semantic index: a LanceDB table of frame embeddings, searched by cosine similarity.

Pure storage and query, no video I/O. One row per sampled frame: its unit vector, the video
(absolute path) and that file's stamp, the shot it belongs to, the frame and a small thumbnail.
A search returns one hit per shot (its best-matching frame), best first.

Small tables are searched exactly (LanceDB's flat scan). Once a table holds
``ANN_MIN_ROWS`` rows it gets an IVF-SQ vector index (k-means partitions of 8-bit quantised
vectors: at 10^6 x 512 it builds in about half a minute on two cores, where IVF-PQ takes several,
and finds more of the true neighbours than IVF-RQ). Queries probe ``NPROBES`` partitions and
re-rank ``REFINE_FACTOR`` times the candidates they need with the full vectors, so scores are
exact cosines even though the candidates are approximate. Rows added after the index was built
are scanned exactly until :meth:`Index.optimize` folds them in (or rebuilds the index).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.atomic import atomic_write_bytes
from kinema.core.errors import InvalidArgumentError
from kinema.core.extras import require

TABLE = "frames"
META_FILE = "kinema-index.json"
ANN_MIN_ROWS = 50_000
# Rows per IVF partition the index aims for, how many partitions a query probes and how many
# candidates per wanted row are re-ranked exactly: ~98% of the true top 10 at 10^6 rows of
# clustered vectors, in ~20 ms (benchmarks/bench_search.py).
PARTITION_ROWS = 4096
NPROBES = 20
REFINE_FACTOR = 4
# Sampled frames fetched per wanted hit before grouping by shot; doubled while too few shots.
OVERFETCH = 4
COLUMNS = ("video", "video_key", "shot_start", "shot_end", "start", "end", "frame", "time", "thumbnail")


@dataclass(frozen=True)
class Hit:
    """One shot that matches a query: where it is and how well its best frame matches.

    ``score`` is the cosine similarity of that frame (``frame``, at ``time`` seconds) with the
    query; ``start``/``end`` are the shot's seconds and ``shot_start``/``shot_end`` its frames
    (end exclusive); ``thumbnail`` is a small PNG of the frame.
    """

    video: str
    start: float
    end: float
    score: float
    frame: int
    time: float
    shot_start: int
    shot_end: int
    thumbnail: bytes


def _lancedb():
    return require("lancedb", "search", feature="the search index")


def schema(dim: int):
    """The table's Arrow schema for ``dim``-dimensional vectors."""
    import pyarrow as pa

    return pa.schema([
        pa.field("vector", pa.list_(pa.float32(), dim)),
        pa.field("video", pa.string()),
        pa.field("video_key", pa.string()),
        pa.field("shot_start", pa.int64()),
        pa.field("shot_end", pa.int64()),
        pa.field("start", pa.float64()),
        pa.field("end", pa.float64()),
        pa.field("frame", pa.int64()),
        pa.field("time", pa.float64()),
        pa.field("thumbnail", pa.binary()),
    ])


def sql_string(value: str) -> str:
    """``value`` as an SQL string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


class Index:
    """A LanceDB database folder holding the ``frames`` table (created by the first :meth:`add`).

    ``ann_min_rows`` is the table size at which the vector index is built (``None``: never
    automatically; :meth:`optimize` still builds it).
    """

    def __init__(self, db_dir: str | os.PathLike[str], *, ann_min_rows: int | None = ANN_MIN_ROWS) -> None:
        self.db_dir = Path(db_dir)
        if self.db_dir.exists() and not self.db_dir.is_dir():
            raise InvalidArgumentError("is not a folder", path=self.db_dir,
                                       hint="give a folder for the index (it is created if missing)")
        self.ann_min_rows = ann_min_rows
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self._db = _lancedb().connect(str(self.db_dir))
        self._table = self._db.open_table(TABLE) if TABLE in self._table_names() else None
        self._ann: bool | None = None

    def _table_names(self) -> list[str]:
        listing = self._db.list_tables()
        return list(getattr(listing, "tables", listing))

    # -- metadata ----------------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        """The vectors' dimension, or ``None`` while the table does not exist."""
        if self._table is None:
            return None
        return int(self._table.schema.field("vector").type.list_size)

    @property
    def meta(self) -> dict[str, Any]:
        """What the caller recorded with :meth:`set_meta` (e.g. which model made the vectors)."""
        path = self.db_dir / META_FILE
        if not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def set_meta(self, **values: Any) -> None:
        """Record ``values`` (JSON-able) beside the table, merged into :attr:`meta`."""
        data = {**self.meta, **values}
        atomic_write_bytes(self.db_dir / META_FILE, (json.dumps(data, indent=2) + "\n").encode())

    # -- rows --------------------------------------------------------------------------

    def count(self) -> int:
        """Rows (sampled frames) in the index."""
        return 0 if self._table is None else int(self._table.count_rows())

    def has(self, video: str | os.PathLike[str], video_key: str) -> bool:
        """Whether ``video`` is indexed with exactly this stamp (an unchanged file)."""
        if self._table is None:
            return False
        where = f"video = {sql_string(os.fspath(video))} AND video_key = {sql_string(video_key)}"
        return int(self._table.count_rows(where)) > 0

    def videos(self) -> dict[str, str]:
        """Every indexed video and its stamp."""
        if self._table is None:
            return {}
        cols = self._table.search().select(["video", "video_key"]).limit(None).to_arrow()
        return dict(zip(cols["video"].to_pylist(), cols["video_key"].to_pylist(), strict=True))

    def remove(self, video: str | os.PathLike[str]) -> None:
        """Drop every row of ``video``."""
        if self._table is not None:
            self._table.delete(f"video = {sql_string(os.fspath(video))}")

    def add(self, rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> int:
        """Append rows (a list of row dicts, or a dict of columns) in one commit; returns how many.

        Each row has the fields of :func:`schema`; ``vector`` is a unit vector (the index
        compares by cosine). The first add creates the table with its vectors' dimension. When
        the table reaches ``ann_min_rows`` and has no vector index yet, the index is built.
        """
        import pyarrow as pa

        columns = _columns(rows)
        n = len(columns["vector"])
        if n == 0:
            return 0
        vectors = np.asarray(columns["vector"], np.float32)
        if vectors.ndim != 2 or vectors.shape[1] < 1:
            raise InvalidArgumentError(f"vectors must be (n, d), got shape {vectors.shape}")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise InvalidArgumentError(f"vectors have {vectors.shape[1]} dimensions, the index {self.dim}",
                                       path=self.db_dir,
                                       hint="index with the model that built it, or into a new folder")
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise InvalidArgumentError(f"rows lack {', '.join(missing)}")
        sch = schema(vectors.shape[1])
        arrays = [pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])]
        arrays += [pa.array(columns[c], type=sch.field(c).type) for c in COLUMNS]
        data = pa.Table.from_arrays(arrays, schema=sch)
        if self._table is None:  # empty first, so a table another process just made is appended to
            self._table = self._db.create_table(TABLE, schema=sch, exist_ok=True)
        self._table.add(data)
        big = self.ann_min_rows is not None and self.count() >= self.ann_min_rows
        if big and not self.has_vector_index():
            self.build_vector_index()
        return n

    # -- the vector index --------------------------------------------------------------

    def has_vector_index(self) -> bool:
        """Whether the vectors have an ANN index (else every search is an exact scan)."""
        if self._table is None:
            return False
        if self._ann is None:
            self._ann = any("vector" in cfg.columns for cfg in self._table.list_indices())
        return self._ann

    def build_vector_index(self) -> None:
        """(Re)train the IVF-SQ index on every row now in the table."""
        if self._table is None:
            return
        from lancedb.index import IvfSq

        n = self.count()
        if n < 256:  # too few rows to train partitions on: a flat scan is as fast
            return
        partitions = max(1, min(round(n / PARTITION_ROWS), round(math.sqrt(n))))
        self._table.create_index("vector", config=IvfSq(distance_type="cosine", num_partitions=partitions),
                                 replace=True)
        self._ann = True

    def optimize(self, *, rebuild: bool = True) -> None:
        """Compact the table's files and rebuild the vector index (``rebuild=False``: only fold
        rows added since into the existing index, without retraining it)."""
        if self._table is None:
            return
        self._table.optimize()
        if rebuild and (self.has_vector_index() or
                        (self.ann_min_rows is not None and self.count() >= self.ann_min_rows)):
            self.build_vector_index()

    # -- search ------------------------------------------------------------------------

    def search(self, vector: np.ndarray | Sequence[float], top: int = 10) -> list[Hit]:
        """The ``top`` shots whose frames best match ``vector`` (cosine), best first; each shot
        once, with its best frame's score."""
        if top < 1:
            raise InvalidArgumentError(f"top must be >= 1, got {top}")
        if self._table is None:
            return []
        query = np.asarray(vector, np.float32).reshape(-1)
        if query.size != self.dim:
            raise InvalidArgumentError(f"the query has {query.size} dimensions, the index {self.dim}",
                                       path=self.db_dir, hint="search with the model that built the index")
        norm = float(np.linalg.norm(query))
        if not math.isfinite(norm) or norm == 0:
            raise InvalidArgumentError("the query vector is zero or not finite")
        query = query / norm
        limit = top * OVERFETCH
        while True:
            found = self._nearest(query, limit)
            hits = _best_per_shot(found)
            if len(hits) >= top or found.num_rows < limit:
                return hits[:top]
            limit *= 4

    def _nearest(self, query: np.ndarray, limit: int):
        """The ``limit`` nearest rows (an Arrow table with ``_distance``), nearest first."""
        q = (self._table.search(query, vector_column_name="vector").distance_type("cosine")
             .select([*COLUMNS, "_distance"]).limit(limit))
        if self.has_vector_index():
            q = q.nprobes(NPROBES).refine_factor(REFINE_FACTOR)
        return q.to_arrow()


def _columns(rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(rows, Mapping):
        if "vector" not in rows:
            raise InvalidArgumentError("rows lack vector")
        return dict(rows)
    rows = list(rows)
    if not rows:
        return {"vector": []}
    try:
        return {c: [r[c] for r in rows] for c in ("vector", *COLUMNS)}
    except KeyError as exc:
        raise InvalidArgumentError(f"rows lack {exc.args[0]}") from exc


def _best_per_shot(found) -> list[Hit]:
    """One hit per ``(video, shot_start)``, with its best row; rows arrive nearest first."""
    cols = {c: found[c].to_pylist() for c in (*COLUMNS, "_distance")}
    hits: dict[tuple[str, int], Hit] = {}
    for i in range(found.num_rows):
        key = (cols["video"][i], cols["shot_start"][i])
        score = 1.0 - float(cols["_distance"][i])
        if key in hits and hits[key].score >= score:
            continue
        hits[key] = Hit(video=cols["video"][i], start=cols["start"][i], end=cols["end"][i], score=score,
                        frame=cols["frame"][i], time=cols["time"][i], shot_start=cols["shot_start"][i],
                        shot_end=cols["shot_end"][i], thumbnail=cols["thumbnail"][i])
    return sorted(hits.values(), key=lambda h: -h.score)
