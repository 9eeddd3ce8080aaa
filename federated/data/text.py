"""Token streams for language modelling: WikiText-103 (raw, downloaded once) and the Python
standard library's help texts (offline), tokenised by bytes or by GPT-2's BPE (the paper's).

WikiText-103 is tokenised once per tokenizer into a nanoGPT-style cache of raw token ids next to
the text, ``root/wikitext-103-raw/<tokenizer.name>.<split>.bin``, which later loads map from disk.
Delete those files to re-tokenise.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from federated.data.archives import fetch, unpack
from federated.data.errors import DataError

__all__ = [
    "TOKENIZERS",
    "WIKITEXT103_URL",
    "ByteTokenizer",
    "GPT2Tokenizer",
    "TokenData",
    "Tokenizer",
    "download_wikitext103",
    "load_pydoc",
    "load_wikitext103",
    "token_dtype",
    "tokenize_file",
]

WIKITEXT103_URL = "https://wikitext.smerity.com/wikitext-103-raw-v1.zip"
WIKITEXT103_MD5 = "0ca3512bd7a238be4a63ce7b434f8935"  # the raw v1 archive as released (191,984,949 bytes)
WIKITEXT_FOLDER = "wikitext-103-raw"
WIKITEXT_SPLITS = ("train", "valid")  # the archive also holds wiki.test.raw, which is not used


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """The smallest unsigned dtype that holds ids ``0 .. vocab_size - 1`` (uint16 up to 65,536)."""
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


class Tokenizer(Protocol):
    name: str  # names the cache files
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: np.ndarray) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens: 256 ids, no vocabulary file.

    >>> ids = ByteTokenizer().encode("né")
    >>> ids, ByteTokenizer().decode(ids)
    (array([110, 195, 169], dtype=uint16), 'né')
    """

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids: np.ndarray) -> str:
        return np.asarray(ids, dtype=np.uint8).tobytes().decode("utf-8", errors="replace")


_TIKTOKEN_HELP = (
    "tiktoken downloads the GPT-2 vocabulary (vocab.bpe and encoder.json from "
    "openaipublic.blob.core.windows.net) once and caches it in $TIKTOKEN_CACHE_DIR (default: "
    "<temp dir>/data-gym-cache). Without internet, pre-seed that cache: on a machine with internet run "
    "`TIKTOKEN_CACHE_DIR=$PWD/tiktoken-cache python -c \"import tiktoken; tiktoken.get_encoding('gpt2')\"`, "
    "copy the tiktoken-cache folder here and set TIKTOKEN_CACHE_DIR to its path."
)


class _Encoding(Protocol):
    """What :class:`GPT2Tokenizer` uses of a ``tiktoken.Encoding``."""

    @property
    def name(self) -> str: ...

    @property
    def n_vocab(self) -> int: ...

    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode(self, tokens: list[int], errors: str = ...) -> str: ...


class GPT2Tokenizer:
    """GPT-2's byte-level BPE through ``tiktoken`` (50,257 ids); ``encode`` inserts no end-of-text
    token. ``encoding`` replaces ``tiktoken.get_encoding("gpt2")`` (tests pass a small one); the
    tokenizer takes its name and vocabulary size from it."""

    def __init__(self, encoding: _Encoding | None = None) -> None:
        if encoding is None:
            try:
                import tiktoken
            except ImportError as err:
                raise DataError(
                    "the GPT-2 tokenizer needs tiktoken: pip install 'laser-ota[text]' "
                    "(or pip install tiktoken)"
                ) from err
            try:
                encoding = tiktoken.get_encoding("gpt2")
            except Exception as err:  # network errors surface as requests/urllib/OSError types
                raise DataError(
                    f"tiktoken could not load the GPT-2 vocabulary ({err}). {_TIKTOKEN_HELP}"
                ) from err
        self.encoding = encoding
        self.name: str = encoding.name
        self.vocab_size: int = encoding.n_vocab

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.encoding.encode_ordinary(text), dtype=token_dtype(self.vocab_size))

    def decode(self, ids: np.ndarray) -> str:
        return self.encoding.decode([int(i) for i in ids], errors="replace")


TOKENIZERS = {"byte": ByteTokenizer, "gpt2": GPT2Tokenizer}


@dataclass(frozen=True)
class TokenData:
    """Token streams: ``train`` and ``valid`` 1-D arrays of :func:`token_dtype` (possibly read-only
    memory maps), ids in ``0 .. vocab_size - 1``."""

    train: np.ndarray
    valid: np.ndarray
    vocab_size: int


def _chunks(file, chunk_chars: int):
    """Whole lines, about ``chunk_chars`` characters at a time, cut only before a line that starts
    with one space and then a non-space (WikiText's every line): the GPT-2 pre-tokeniser ends a
    piece there whatever follows, so encoding the chunks separately equals encoding the whole."""
    lines: list[str] = []
    size = 0
    for line in file:
        if size >= chunk_chars and line[:1] == " " and line[1:2].strip():
            yield "".join(lines)
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        yield "".join(lines)


def tokenize_file(raw_path: Path, cache_path: Path, tokenizer: Tokenizer, chunk_chars: int = 1 << 22) -> int:
    """Encode the UTF-8 text file ``raw_path`` chunk by chunk (memory stays bounded) into
    ``cache_path``, raw :func:`token_dtype` ids written with ``tofile``, atomically. Returns the
    number of tokens."""
    dtype = token_dtype(tokenizer.vocab_size)
    handle, name = tempfile.mkstemp(prefix=f".{cache_path.name}.", suffix=".part", dir=cache_path.parent)
    count = 0
    try:
        with os.fdopen(handle, "wb") as out, open(raw_path, encoding="utf-8", newline="") as text:
            for chunk in _chunks(text, chunk_chars):
                ids = tokenizer.encode(chunk).astype(dtype, copy=False)
                ids.tofile(out)
                count += len(ids)
        os.replace(name, cache_path)  # concurrent runs never see a half-written cache
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return count


def _read_cache(path: Path, dtype: type[np.unsignedinteger]) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _wikitext_instructions(root: Path, tried: bool = False) -> str:
    archive = WIKITEXT103_URL.rsplit("/", 1)[-1]
    fetch_it = (
        "" if tried else f"Set data.download=true (download=True in Python) to fetch {WIKITEXT103_URL}, or "
    )
    by_hand = f"on a machine with internet run `curl -LO {WIKITEXT103_URL}` (MD5 {WIKITEXT103_MD5})"
    return (
        f"Expected wiki.train.raw and wiki.valid.raw in {root / WIKITEXT_FOLDER}. "
        f"{fetch_it}{by_hand[0].upper() + by_hand[1:] if tried else by_hand}, copy {archive} to {root} and "
        f"run `unzip {archive} -d {root}`."
    )


def download_wikitext103(root: str | Path, url: str | None = None, md5: str | None = None) -> None:
    """Download the WikiText-103 raw archive (MD5-checked; or ``url``, checked against ``md5`` when
    given) and unpack it into ``root``. Failures raise :class:`DataError`."""
    root = Path(root)
    source = url or WIKITEXT103_URL
    md5 = WIKITEXT103_MD5 if url is None else md5
    archive = fetch(source, root, md5, _wikitext_instructions(root, tried=True))
    try:
        unpack(archive, root, WIKITEXT_FOLDER, source=source)
    finally:
        archive.unlink(missing_ok=True)


def load_wikitext103(root: str | Path, tokenizer: Tokenizer, download: bool = False) -> TokenData:
    """WikiText-103 raw v1 (Merity 2016; ~103M words of Wikipedia), train and valid splits as token
    streams, tokenised on first use into ``root/wikitext-103-raw/<tokenizer.name>.<split>.bin``.

    Raw files are only needed for splits without a cache; when they are missing, they are downloaded
    if ``download`` is true, otherwise :class:`DataError` says how to get them.
    """
    root = Path(root)
    folder = root / WIKITEXT_FOLDER
    raw = {split: folder / f"wiki.{split}.raw" for split in WIKITEXT_SPLITS}
    cache = {split: folder / f"{tokenizer.name}.{split}.bin" for split in WIKITEXT_SPLITS}
    if any(not cache[split].is_file() and not raw[split].is_file() for split in WIKITEXT_SPLITS):
        if not download:
            raise DataError(f"WikiText-103 not found. {_wikitext_instructions(root)}")
        download_wikitext103(root)
    for split in WIKITEXT_SPLITS:
        if not cache[split].is_file():
            tokenize_file(raw[split], cache[split], tokenizer)
    dtype = token_dtype(tokenizer.vocab_size)
    return TokenData(
        _read_cache(cache["train"], dtype), _read_cache(cache["valid"], dtype), tokenizer.vocab_size
    )


def load_pydoc(root: str | Path, tokenizer: Tokenizer, valid_fraction: float = 0.1) -> TokenData:
    """The help texts of Python's standard library (``pydoc_data.topics.topics``, ~0.7 MB), joined in
    sorted key order with blank lines; the last ``valid_fraction`` of the characters is the
    validation split. Offline and fast; ``root`` is unused (every loader takes one).

    >>> data = load_pydoc("data", ByteTokenizer())
    >>> data.vocab_size, data.train.dtype, 0.85 < len(data.train) / (len(data.train) + len(data.valid)) < 0.95
    (256, dtype('uint16'), True)
    """
    from pydoc_data.topics import topics

    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    text = "\n\n".join(topics[key] for key in sorted(topics))
    cut = round(len(text) * (1 - valid_fraction))
    return TokenData(tokenizer.encode(text[:cut]), tokenizer.encode(text[cut:]), tokenizer.vocab_size)
