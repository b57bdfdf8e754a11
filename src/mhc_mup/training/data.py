"""Byte-level language-modelling data from a real text corpus, with no download.

The corpus is a text file or a folder of them. The default is the Python standard library's own
``.py`` sources (``sysconfig.get_paths()["stdlib"]`` without ``site-packages``), present on every
machine. A folder is split into train and validation **by file**, deterministically: a file goes to
validation when the first byte of the SHA-256 of its relative path is below ``256·val_fraction``.
A single file (or a folder whose hash split leaves one side empty) is split by bytes instead: the
last ``val_fraction`` of the concatenated text is validation.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mhc_mup.errors import CorpusError

SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
DEFAULT_MAX_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Corpus:
    """Train and validation bytes, ``(N,)`` uint8 tensors, where they came from, and what they are
    (:attr:`sha256`: of the train bytes, then the validation bytes, in hex)."""

    train: torch.Tensor
    val: torch.Tensor
    source: str
    n_files: int
    split: str  # "by file" or "by bytes"

    @functools.cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for split in (self.train, self.val):
            h.update(len(split.numpy()).to_bytes(8, "little"))  # the split point is part of what the data is
            h.update(split.numpy().tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        return (
            f"{self.source}: {self.n_files} file(s), {self.train.numel():,} train / {self.val.numel():,} "
            f"validation bytes (split {self.split}), sha256 {self.sha256[:12]}"
        )


def described_train_bytes(description: str) -> int | None:
    """The training split's size in a :meth:`Corpus.describe` line (the form run records keep their corpus in);
    None for a line of another form."""
    match = re.search(r"([\d,]+) train / ", description)
    return int(match.group(1).replace(",", "")) if match else None


def default_corpus() -> Path:
    """The standard library's source folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def _is_text(path: Path) -> bool:
    with path.open("rb") as fh:
        return b"\0" not in fh.read(8192)


def corpus_files(root: Path, pattern: str = "*") -> list[Path]:
    """Text files under ``root`` matching ``pattern``, sorted by relative path; hidden folders,
    ``site-packages``, ``dist-packages``, ``__pycache__`` and binary files (a NUL in the first
    8 KiB) are skipped."""
    return list(_text_files(root, pattern))


def _text_files(root: Path, pattern: str) -> Iterator[Path]:
    """:func:`corpus_files`, lazily: each file is opened to test for text only when it is reached, so a reader
    that stops early (a capped corpus) never opens the rest of a large folder."""
    for path in sorted(root.rglob(pattern)):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in SKIP_DIRS for p in parts) or not path.is_file():
            continue
        try:
            if _is_text(path):
                yield path
        except OSError:
            continue


def _hash_byte(relative: Path) -> int:
    """First byte of the SHA-256 of a relative path (POSIX form): the file's place in the split."""
    return hashlib.sha256(relative.as_posix().encode()).digest()[0]


def _to_tensor(chunks: list[bytes]) -> torch.Tensor:
    data = b"".join(chunks)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


@functools.lru_cache(maxsize=2)
def cached_corpus(path: str | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Corpus:
    """:func:`load_corpus` of ``path`` (``None``: the standard library's sources) with at most ``max_bytes`` a
    split, loaded once per process."""
    return load_corpus(path, max_bytes=max_bytes)


def load_corpus(
    path: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pattern: str | None = None,
) -> Corpus:
    """Read a corpus and split it into train and validation bytes.

    ``path`` None → :func:`default_corpus` with ``pattern`` ``*.py``; a folder uses every text file
    (``pattern`` ``*`` unless given). The files are read in path order until the training split holds
    ``max_bytes`` bytes (the last file cut to fit); validation keeps the files of that same range, at most
    ``max_bytes`` bytes, so that both splits come from the same part of a corpus larger than the cap.
    :class:`CorpusError` if the path is missing, holds no text or only empty files.
    """
    if not 0 < val_fraction < 1:
        raise CorpusError(f"validation fraction must be in (0, 1), got {val_fraction!r}")
    root = default_corpus() if path is None else Path(path).expanduser()
    files, base = _corpus_files(root, pattern or ("*.py" if path is None else "*"))
    parts, used = _read_splits(files, base, int(256 * val_fraction), max_bytes)
    if not used:
        raise CorpusError(f"corpus '{root}' is empty")
    if parts["train"] and parts["val"]:
        return Corpus(_to_tensor(parts["train"]), _to_tensor(parts["val"]), str(root), used, "by file")
    data = _to_tensor(parts["train"] + parts["val"])
    cut = max(1, round(data.numel() * (1 - val_fraction)))
    return Corpus(data[:cut], data[cut:], str(root), used, "by bytes")


def _corpus_files(root: Path, pattern: str) -> tuple[Iterator[Path], Path]:
    """The corpus's files in path order and the folder their names are taken relative to (:class:`CorpusError`
    if ``root`` is missing, or a folder with no file matching ``pattern``)."""
    if not root.exists():
        raise CorpusError(f"corpus '{root}' does not exist")
    if root.is_file():
        return iter([root]), root.parent
    if not root.is_dir():
        raise CorpusError(f"corpus '{root}' is neither a file nor a folder")
    found = _text_files(root, pattern)
    first = next(found, None)
    if first is None:
        raise CorpusError(f"corpus folder '{root}' has no text files matching {pattern!r}")
    return itertools.chain([first], found), root


def _read_splits(
    files: Iterator[Path], base: Path, threshold: int, max_bytes: int
) -> tuple[dict[str, list[bytes]], int]:
    """Each file's bytes on the side its name's hash byte picks (validation under ``threshold``), each side capped
    at ``max_bytes``, until the training side is full; and how many non-empty files were read."""
    parts: dict[str, list[bytes]] = {"train": [], "val": []}
    sizes = {"train": 0, "val": 0}
    used = 0
    for f in files:
        # one file alone ends up split by bytes below, whichever side its hash picks
        side = "val" if _hash_byte(f.relative_to(base)) < threshold else "train"
        if sizes[side] >= max_bytes:
            continue
        try:
            text = f.read_bytes()[: max_bytes - sizes[side]]
        except OSError as exc:
            raise CorpusError(f"cannot read corpus file '{f}': {exc.strerror or exc}") from None
        if text:
            parts[side].append(text)
            sizes[side] += len(text)
            used += 1
        if sizes["train"] >= max_bytes:  # both splits end at this file: validation covers the training's range
            break
    return parts, used


def sample_windows(data: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` random windows of ``seq_len + 1`` bytes of ``data``: ``(B, T+1)``, in ``data``'s dtype."""
    n = data.numel() - seq_len - 1
    if n < 0:
        raise CorpusError(f"corpus split has {data.numel()} bytes; need at least seq_len + 1 = {seq_len + 1}")
    starts = torch.randint(0, n + 1, (batch_size,), generator=generator)
    return data[starts.unsqueeze(1) + torch.arange(seq_len + 1)]


def sample_batch(
    data: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``data``: inputs ``(B, T)`` and next-byte targets ``(B, T)``, int64."""
    windows = sample_windows(data, batch_size, seq_len, generator).long()
    return windows[:, :-1], windows[:, 1:]
