"""Byte-level corpus: the standard library by default, a deterministic split by file, clear errors."""

from __future__ import annotations

import hashlib

import pytest
import torch

from mhc_mup.training.data import (
    CorpusError,
    corpus_files,
    default_corpus,
    described_train_bytes,
    load_corpus,
    sample_batch,
)


def test_default_corpus_is_the_stdlib_without_site_packages():
    root = default_corpus()
    files = corpus_files(root, "*.py")
    assert root.is_dir() and len(files) > 100
    assert not any("site-packages" in f.parts or "__pycache__" in f.parts for f in files)
    assert root / "os.py" in files
    corpus = load_corpus(max_bytes=2**18)
    assert corpus.split == "by file" and corpus.train.dtype == torch.uint8
    assert 0 < corpus.train.numel() <= 2**18 and 0 < corpus.val.numel() <= 2**18


def test_split_by_file_is_deterministic_and_disjoint(tmp_path):
    for i in range(40):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"<{i:02d}>" * 10)
    a, b = load_corpus(tmp_path), load_corpus(tmp_path)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val) and a.split == "by file"
    train, val = bytes(a.train.tolist()).decode(), bytes(a.val.tolist()).decode()
    in_train = {i for i in range(40) if f"<{i:02d}>" in train}
    in_val = {i for i in range(40) if f"<{i:02d}>" in val}
    assert in_train and in_val and not in_train & in_val and in_train | in_val == set(range(40))


def test_a_capped_corpus_draws_both_splits_from_the_same_files(tmp_path):
    """A corpus larger than the cap is read in path order until the training split is full; validation keeps the
    held-out files of that range only (validation reading on past it gave a 48 MiB cap of a 7 GB folder training
    files a–c and validation files a–z)."""
    from mhc_mup.training.data import _hash_byte

    for i in range(400):
        (tmp_path / f"doc{i:03d}.txt").write_text(f"<{i:03d}>" * 2)  # 10 bytes a file
    c = load_corpus(tmp_path, max_bytes=300)
    train, val = bytes(c.train.tolist()).decode(), bytes(c.val.tolist()).decode()
    in_train = sorted({int(train[j + 1 : j + 4]) for j in range(0, len(train), 5)})
    in_val = sorted({int(val[j + 1 : j + 4]) for j in range(0, len(val), 5)})
    assert c.train.numel() == 300 and len(in_train) == 30
    held_out = [i for i in range(in_train[-1] + 1) if _hash_byte(tmp_path.joinpath(f"doc{i:03d}.txt").relative_to(
        tmp_path)) < int(256 * 0.1)]  # fmt: skip
    assert in_val == held_out and held_out and in_val[-1] < in_train[-1]
    assert not set(in_train) & set(in_val) and set(in_train) | set(in_val) == set(range(in_train[-1] + 1))


def test_a_capped_corpus_opens_no_file_past_the_last_it_reads(tmp_path, monkeypatch):
    """Reading stops at the file that fills the training split: no later file is opened, even to test it for
    text (a 7 GB folder capped at 48 MiB is otherwise opened file by file)."""
    from mhc_mup.training import data

    for i in range(400):
        (tmp_path / f"doc{i:03d}.txt").write_text(f"<{i:03d}>" * 2)
    opened = []
    is_text = data._is_text
    monkeypatch.setattr(data, "_is_text", lambda path: opened.append(path.name) or is_text(path))
    c = load_corpus(tmp_path, max_bytes=300)
    last = int(bytes(c.train.tolist()).decode()[-4:-1])
    assert opened == [f"doc{i:03d}.txt" for i in range(last + 1)]
    assert data.corpus_files(tmp_path) == sorted(tmp_path.iterdir())  # the listing itself is whole


def test_the_training_bytes_are_read_back_from_a_corpus_line(tmp_path):
    """A run record keeps its corpus as :meth:`Corpus.describe`'s line; the training split's size comes back from
    it (thousands separators included), and nothing from a line of another form."""
    path = tmp_path / "one.txt"
    path.write_bytes(bytes(range(32, 127)) * 20)
    corpus = load_corpus(path)
    assert described_train_bytes(corpus.describe()) == corpus.train.numel() == 1710
    assert described_train_bytes("/usr/lib/python3.12: 569 file(s), 8,798,190 train / 1,872,069 validation") == (
        8_798_190)
    assert described_train_bytes("some corpus") is None


def test_single_file_is_split_by_bytes(tmp_path):
    path = tmp_path / "one.txt"
    path.write_bytes(bytes(range(32, 127)) * 10)
    c = load_corpus(path, val_fraction=0.2)
    assert c.split == "by bytes" and c.n_files == 1
    assert c.train.numel() == 760 and c.val.numel() == 190
    assert bytes(torch.cat([c.train, c.val]).tolist()) == path.read_bytes()


def test_the_corpus_hash_is_its_bytes_and_split(tmp_path):
    """sha256 over the train bytes then the validation bytes, each preceded by its length: the same bytes give the
    same hash wherever they are read from; one byte or the split point changes it."""
    path = tmp_path / "one.txt"
    path.write_bytes(bytes(range(32, 127)) * 10)
    c = load_corpus(path, val_fraction=0.2)
    train, val = path.read_bytes()[:760], path.read_bytes()[760:]
    expected = hashlib.sha256(len(train).to_bytes(8, "little") + train + len(val).to_bytes(8, "little") + val)
    assert c.sha256 == expected.hexdigest() and c.sha256[:12] in c.describe()
    copy = tmp_path / "copy" / "same.txt"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert load_corpus(copy, val_fraction=0.2).sha256 == c.sha256
    assert load_corpus(path, val_fraction=0.3).sha256 != c.sha256
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    assert load_corpus(path, val_fraction=0.2).sha256 != c.sha256


def test_binary_and_hidden_files_are_skipped(tmp_path):
    (tmp_path / "a.txt").write_text("hello world " * 20)
    (tmp_path / "b.bin").write_bytes(b"\0\1\2" * 100)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.txt").write_text("secret")
    assert [f.name for f in corpus_files(tmp_path)] == ["a.txt"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "has no text files"),
        (lambda p: (p / "e.txt").write_text("") or p, "is empty"),
    ],
)
def test_bad_corpus_raises_a_one_line_error(tmp_path, make, message):
    with pytest.raises(CorpusError, match=message):
        load_corpus(make(tmp_path))


def test_batches_are_next_byte_windows():
    data = torch.arange(200, dtype=torch.uint8)
    x, y = sample_batch(data, 4, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    with pytest.raises(CorpusError, match="need at least seq_len"):
        sample_batch(data, 1, 200, torch.Generator())
