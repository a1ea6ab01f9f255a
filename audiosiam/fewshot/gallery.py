"""An enrolment gallery: labelled, L2-normalised embeddings and exact nearest-neighbour search over them.

The gallery is the memory of a few-shot classifier. It stores embeddings, not audio, so it can be saved,
loaded and grown without embedding anything again, and it records which model made the embeddings so a
gallery is never searched with vectors from a different model.

Search is exact cosine similarity. Up to ``faiss_threshold`` items (100,000 by default) it runs on
audiosiam's own blocked ``knn`` op; above that it builds a FAISS ``IndexFlatIP`` (exact inner product,
multi-threaded BLAS), which is what a 100k+ gallery needs. Both return the same neighbours up to ties.

File format (``.asg``): a NumPy ``.npz`` archive read with ``allow_pickle=False``, so opening a gallery
from someone else cannot run code. It holds ``embeddings`` (N, D) float32, ``labels`` and ``sources``
(N,) strings, and ``meta``: a JSON string with the format version, the audiosiam version and the model
fingerprint. Reading checks every member's declared dtype and shape before inflating it (no file may declare
more than ``MAX_EXPANSION`` times its size: a zip bomb is refused after reading a few hundred bytes), then
every metadata field's type and range and that the embeddings are finite unit vectors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._version import __version__
from ..errors import GalleryError, ParameterError
from ..files import atomic_write
from ..paths import as_path, not_a_regular_file

#: The version of the ``.asg`` format that this audiosiam writes and reads.
FORMAT_VERSION = 1
FAISS_THRESHOLD = 100_000


def gallery_path(path: str | os.PathLike) -> Path:
    """The one rule for a gallery's file name, for writing, reading and locking it: ``.asg`` appended when
    missing, the path made absolute with symbolic links followed (so every spelling of one gallery is one file
    and one lock, and an update through a link changes its target rather than replacing the link).

    Args:
        path (str or Path): the gallery as the user spelled it.

    Returns:
        Path: the file.
    """
    path = Path(path)
    if path.suffix != ".asg" and not path.is_dir():
        path = path.with_name(path.name + ".asg")
    return path.resolve()


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's parameters and buffers: equal iff the model computes the same embeddings.

    Args:
        model (torch.nn.Module): any module; its ``state_dict`` (names, shapes and values) is hashed.

    Returns:
        16 hex digits.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class Gallery:
    """Labelled embeddings with exact cosine nearest-neighbour search.

    Args:
        dim (int): embedding size D (positive).
        fingerprint (str): ``model_fingerprint()`` of the model that makes the embeddings.
        faiss_threshold (int, optional): from this many items on, search through FAISS instead of
            ``audiosiam.ops.knn``. Default: ``FAISS_THRESHOLD`` (``100_000``).

    Raises:
        ParameterError: ``dim`` is not positive.

    Example:
        >>> g = Gallery(dim=192, fingerprint=model_fingerprint(model))
        >>> g.add(model.embed(paths), labels, sources=paths)
        >>> sims, idx = g.search(model.embed(["q.wav"]), k=5)
    """

    def __init__(self, dim: int, fingerprint: str, *, faiss_threshold: int = FAISS_THRESHOLD):
        if int(dim) <= 0:
            raise ParameterError(f"dim={dim}: the embedding size must be a positive integer")
        self.dim = int(dim)
        self.fingerprint = str(fingerprint)
        self.faiss_threshold = int(faiss_threshold)
        self.embeddings = torch.empty(0, self.dim, dtype=torch.float32)
        self.labels: list[str] = []
        self.sources: list[str] = []
        self.meta: dict = {}  # extra JSON-serialisable settings saved with the gallery (e.g. calibration)
        self._faiss_index = None
        self._indexed = None  # (classes, codes, prototypes), built once per content, dropped by add()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> list[str]:
        """The distinct labels, sorted."""
        return sorted(set(self.labels))

    def counts(self) -> dict[str, int]:
        """Number of items per label."""
        out: dict[str, int] = {}
        for label in self.labels:
            out[label] = out.get(label, 0) + 1
        return dict(sorted(out.items()))

    def add(self, embeddings: torch.Tensor, labels: Sequence[str], sources: Sequence[str] | None = None) -> "Gallery":
        """Append items. Embeddings are re-normalised, so any positive scaling of them is accepted.

        Args:
            embeddings (Tensor or array): (N, D) float embeddings, finite and no row all zeros.
            labels (sequence of str): N class names (turned into ``str``).
            sources (sequence of str or None, optional): N descriptions of where each came from (file paths);
                ``None``: ``""`` for each. Default: ``None``.

        Returns:
            Gallery: ``self``.

        Raises:
            ParameterError: a wrong shape, a count that does not match, or NaN, Inf or all-zero rows.
        """
        emb = torch.as_tensor(np.asarray(embeddings) if not torch.is_tensor(embeddings) else embeddings)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ParameterError(f"embeddings: expected shape (N, {self.dim}), got {tuple(emb.shape)}")
        labels = [str(label) for label in labels]
        if len(labels) != emb.shape[0]:
            raise ParameterError(f"labels: expected {emb.shape[0]} labels (one per embedding), got {len(labels)}")
        sources = [""] * len(labels) if sources is None else [str(s) for s in sources]
        if len(sources) != len(labels):
            raise ParameterError(f"sources: expected {len(labels)} entries, got {len(sources)}")
        emb = emb.detach().to(torch.float32).cpu()
        if not torch.isfinite(emb).all():
            raise ParameterError("embeddings: contain NaN or Inf values; they cannot be enrolled")
        norms = emb.norm(dim=1, keepdim=True)
        if (norms == 0).any():
            raise ParameterError("embeddings: a row is all zeros and has no direction to compare")
        self.embeddings = torch.cat([self.embeddings, emb / norms])
        self.labels.extend(labels)
        self.sources.extend(sources)
        self._faiss_index = None
        self._indexed = None
        return self

    def _index(self):
        if self._indexed is None:
            classes = self.classes
            lookup = {c: i for i, c in enumerate(classes)}
            codes = torch.tensor([lookup[label] for label in self.labels], dtype=torch.long)
            sums = torch.zeros(len(classes), self.dim).index_add_(0, codes, self.embeddings)
            self._indexed = (classes, codes, torch.nn.functional.normalize(sums, dim=1))
        return self._indexed

    def check_fingerprint(self, fingerprint: str, path: str | os.PathLike = "gallery") -> None:
        """Refuse (GalleryError) a model other than the one that made these embeddings.

        Args:
            fingerprint (str): ``model_fingerprint()`` of the model about to be used with the gallery.
            path (str or Path, optional): how the error message names the gallery. Default: ``"gallery"``.

        Raises:
            GalleryError: the fingerprints differ.
        """
        if fingerprint != self.fingerprint:
            raise GalleryError(
                f"{path}: made by a different model (fingerprint {self.fingerprint}) than the one loaded now "
                f"({fingerprint}); embeddings of different models are not comparable, so enrol the clips again "
                "with this model"
            )

    def label_indices(self) -> tuple[list[str], torch.Tensor]:
        """``(classes, codes)``: sorted class names and, per item, the index of its class (cached)."""
        classes, codes, _ = self._index()
        return classes, codes

    def prototypes(self) -> tuple[list[str], torch.Tensor]:
        """``(classes, P)``: per class the normalised mean of its embeddings, P of shape (C, D) (cached)."""
        classes, _, protos = self._index()
        return classes, protos

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact k nearest gallery items by cosine similarity.

        Args:
            queries (Tensor or array): (Q, D) embeddings (normalised here).
            k (int): neighbours per query, 1 <= k <= len(self).

        Returns:
            ``(similarities, indices)``, both (Q, k), most similar first; ties go to the lower index.
        """
        if len(self) == 0:
            raise GalleryError("the gallery is empty: enrol some labelled clips before searching it")
        if not 1 <= int(k) <= len(self):
            raise ParameterError(f"k={k}: must be between 1 and the gallery size {len(self)}")
        q = torch.nn.functional.normalize(torch.as_tensor(queries, dtype=torch.float32), dim=1)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ParameterError(f"queries: expected shape (Q, {self.dim}), got {tuple(q.shape)}")
        if len(self) >= self.faiss_threshold:
            return self._search_faiss(q, int(k))
        from ..ops import knn

        # cosine distance = 1 - cosine similarity on unit vectors; knn returns ascending distances.
        distances, indices = knn(q, self.embeddings, int(k), metric="cosine")
        return 1.0 - distances, indices

    def _search_faiss(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        import faiss

        if self._faiss_index is None:
            index = faiss.IndexFlatIP(self.dim)
            index.add(self.embeddings.numpy())
            self._faiss_index = index
        sims, idx = self._faiss_index.search(q.numpy(), k)
        return torch.from_numpy(sims), torch.from_numpy(idx).long()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the gallery to ``path`` (``.asg`` appended if missing), atomically: a failed write
        leaves any previous file intact.

        Args:
            path (str or Path): the file to write.

        Returns:
            Path: the file written (with its ``.asg`` suffix).

        Raises:
            GalleryError: ``path`` is a folder or cannot be written.
        """
        path = Path(path)
        if path.is_dir():  # checked before the suffix is added: "out/" must not become "out.asg" beside it
            raise GalleryError(f"{path}: is a folder; give the gallery a file name (e.g. {path}/gallery.asg)")
        path = gallery_path(path)
        meta = {
            "format": "audiosiam-gallery",
            "format_version": FORMAT_VERSION,
            "audiosiam_version": __version__,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "extra": self.meta,
        }
        if path.is_dir():
            raise GalleryError(f"{path}: is a folder; give the gallery a file name (e.g. {path}/gallery.asg)")

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    embeddings=self.embeddings.numpy(),
                    labels=np.asarray(self.labels, dtype=np.str_),
                    sources=np.asarray(self.sources, dtype=np.str_),
                    meta=np.asarray(json.dumps(meta)),
                )

        try:
            return atomic_write(path, write)
        except OSError as exc:
            raise GalleryError(f"{path}: cannot be written ({exc.strerror or exc}); choose another place") from None

    @classmethod
    def load(cls, path: str | os.PathLike, *, fingerprint: str | None = None) -> "Gallery":
        """Read a gallery written by :meth:`save`.

        Args:
            path (str or Path): the ``.asg`` file.
            fingerprint (str or None, optional): when given, the fingerprint of the model that will embed the
                queries; a gallery made by a different model is refused, because its similarities would be
                meaningless. Default: ``None``.

        Raises:
            GalleryError: missing, corrupt, of another format version, or made by another model.
        """
        path = Path(os.fsdecode(as_path(path)))
        if not path.exists() and gallery_path(path).exists():  # "g" names the "g.asg" that `enroll --out g` wrote
            path = gallery_path(path)
        found = not_a_regular_file(path, "gallery file")
        if found is not None:
            raise GalleryError(f"{path}: {found[1]} (make one with `audiosiam enroll DIR --out {path}`)")
        try:
            meta, embeddings, labels, sources = _read_archive(path)
        except GalleryError:
            raise
        except Exception as exc:  # truncated (BadZipFile, EOFError), renamed .npy, crafted content, ...
            raise GalleryError(
                f"{path}: not a readable audiosiam gallery ({type(exc).__name__}: {exc}); it is "
                "damaged or not a gallery: enrol the clips again (`audiosiam enroll`)"
            ) from None
        gallery = cls(meta["dim"], meta["fingerprint"])
        gallery.meta = meta["extra"]
        if fingerprint is not None:
            gallery.check_fingerprint(fingerprint, path)
        gallery.embeddings = embeddings
        gallery.labels = labels
        gallery.sources = sources
        return gallery


# What a gallery's archive holds: member -> the kinds of NumPy dtype it may have (floats for embeddings,
# unicode strings for the rest: never objects, ints, bools or complex numbers).
_MEMBERS = {"meta": "U", "embeddings": "f", "labels": "U", "sources": "U"}
# Our galleries are stored uncompressed, so their arrays are about as big as the file. One compressed by
# another tool may declare more, but a zip bomb (a few MB declaring GBs of zeros) must be refused before a
# byte of it is inflated: its arrays may declare at most this many times the file's size (plus 1 MiB).
#: The most a gallery's arrays may declare, as a multiple of the file's size (a zip bomb declares more).
MAX_EXPANSION = 32
# Embeddings are stored L2-normalised; a row further than this from unit length was not written by us.
_NORM_TOLERANCE = 1e-3


def _read_archive(path: Path) -> tuple[dict, torch.Tensor, list[str], list[str]]:
    """The checked content of a gallery file: ``(meta, embeddings, labels, sources)``.

    Every member's declared dtype and shape is read from its header (a few hundred bytes) and checked
    against the others, the metadata and the file's size before any array is inflated, so no file can make
    us allocate more than ``MAX_EXPANSION`` times its size; then every metadata field's type and range
    and the embeddings' norms are checked. Anything else raises :class:`GalleryError` naming the file.
    """
    import zipfile

    def damaged(problem: str) -> GalleryError:
        return GalleryError(f"{path}: damaged gallery ({problem}); enrol the clips again (`audiosiam enroll`)")

    budget = MAX_EXPANSION * path.stat().st_size + (1 << 20)
    with zipfile.ZipFile(path) as archive:
        members, declared = {}, 0
        for name, kind in _MEMBERS.items():
            try:
                info = archive.getinfo(f"{name}.npy")
            except KeyError:
                raise damaged(f"no {name!r} array") from None
            with archive.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else None
                read_header = read_header or np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(handle)
            if dtype.kind != kind or dtype.hasobject:
                expected = "floating-point numbers" if kind == "f" else "text"
                raise damaged(f"{name!r} holds {dtype} values, expected {expected}")
            if any(size < 0 for size in shape):
                raise damaged(f"{name!r} declares the shape {shape}")
            declared += math.prod(shape) * dtype.itemsize
            members[name] = (info, shape)
        if declared > budget:
            raise damaged(
                f"its arrays declare {declared:,} bytes in a file of {path.stat().st_size:,} bytes, more than "
                f"{MAX_EXPANSION} times its size: a damaged or crafted archive (a zip bomb), not read"
            )
        if members["meta"][1] != ():
            raise damaged(f"'meta' has shape {members['meta'][1]}, expected one JSON text")

        def read(name: str) -> np.ndarray:
            with archive.open(members[name][0]) as handle:
                return np.lib.format.read_array(handle, allow_pickle=False)

        meta = _checked_meta(json.loads(str(read("meta"))), path)
        n_rows = members["labels"][1][0] if len(members["labels"][1]) == 1 else -1
        shapes = {name: members[name][1] for name in ("embeddings", "labels", "sources")}
        if shapes != {"embeddings": (n_rows, meta["dim"]), "labels": (n_rows,), "sources": (n_rows,)}:
            raise GalleryError(
                f"{path}: inconsistent gallery (embeddings {shapes['embeddings']} of width {meta['dim']}, labels "
                f"{shapes['labels']}, sources {shapes['sources']}); enrol the clips again"
            )
        embeddings = torch.from_numpy(np.ascontiguousarray(read("embeddings"), dtype=np.float32))
        labels = read("labels").tolist()
        sources = read("sources").tolist()
    if not torch.isfinite(embeddings).all():
        raise GalleryError(f"{path}: holds NaN or infinite embeddings; enrol the clips again")
    norms = embeddings.double().norm(dim=1)
    off = (norms - 1).abs() > _NORM_TOLERANCE
    if off.any():
        row = int(off.nonzero()[0])
        raise damaged(f"embedding {row} has length {float(norms[row]):.3g}, but a gallery stores unit vectors")
    return meta, embeddings, labels, sources


def _checked_meta(meta, path: Path) -> dict:
    """The gallery's metadata with the fields :meth:`Gallery.load` uses checked by type and range (a JSON
    ``true`` is no version 1, a string no width)."""
    if not isinstance(meta, dict):
        raise GalleryError(f"{path}: not a readable audiosiam gallery (no metadata); enrol the clips again")
    version = meta.get("format_version")
    if meta.get("format") != "audiosiam-gallery" or type(version) is not int or version != FORMAT_VERSION:
        raise GalleryError(
            f"{path}: gallery format {meta.get('format')!r} version {version!r}, "
            f"this audiosiam reads version {FORMAT_VERSION}; enrol the clips again with this version"
        )
    dim, fingerprint, extra = meta.get("dim"), meta.get("fingerprint"), meta.get("extra")
    problem = None
    if type(dim) is not int or not 1 <= dim <= 1 << 16:
        problem = f"dim={dim!r}: expected an embedding width from 1 to 65,536"
    elif not isinstance(fingerprint, str):
        problem = f"fingerprint={fingerprint!r}: expected the model's fingerprint (text)"
    elif not (extra is None or isinstance(extra, dict)):
        problem = f"extra={type(extra).__name__}: expected the classifier's settings (a JSON object)"
    if problem is not None:
        raise GalleryError(f"{path}: damaged gallery metadata ({problem}); enrol the clips again")
    return {**meta, "extra": dict(extra or {})}
