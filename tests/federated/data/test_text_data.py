"""Tokenizers, the WikiText-103 token cache and download, and the offline pydoc corpus."""

import hashlib
import sys
import zipfile

import numpy as np
import pytest

from federated.data import text
from federated.data.errors import DataError
from federated.data.text import (
    ByteTokenizer,
    GPT2Tokenizer,
    load_pydoc,
    load_wikitext103,
    tokenize_file,
)

# GPT-2's pre-tokenisation pattern (tiktoken_ext/openai_public.py, r50k_pat_str)
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
# merges whose result depends on where the pre-tokeniser cuts whitespace runs
MERGES = [b" \n", b" \n ", b" \n \n", b"\n\n", b" =", b" = =", b"th", b"the", b" the", b"  "]


@pytest.fixture
def small_encoding():
    """A GPT-2-style byte-level BPE with 256 byte tokens and a few merges, built offline."""
    import tiktoken

    ranks = {bytes([i]): i for i in range(256)}
    for token in MERGES:
        ranks[token] = len(ranks)
    return tiktoken.Encoding("gpt2-test", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})


# --- tokenizers ---------------------------------------------------------------------------------------


def test_byte_tokenizer_round_trip():
    tokenizer = ByteTokenizer()
    sample = " = Valkyria Chronicles III = \n Senjō no Valkyria – 3 @,@ 000 ✓\n"
    ids = tokenizer.encode(sample)
    assert ids.dtype == np.uint16 and len(ids) == len(sample.encode("utf-8"))
    assert tokenizer.decode(ids) == sample
    assert tokenizer.decode(np.array([104, 0xC3], dtype=np.uint16)) == "h\ufffd"  # cut character


def test_gpt2_tokenizer_with_a_hand_built_encoding(small_encoding):
    tokenizer = GPT2Tokenizer(small_encoding)
    sample = " \n \n = = the theme = = \n The other's  thing – 3 @.@ 5 <|endoftext|>\n"
    ids = tokenizer.encode(sample)
    assert tokenizer.name == "gpt2-test" and tokenizer.vocab_size == 256 + len(MERGES)
    assert ids.dtype == np.uint16 and ids.tolist() == small_encoding.encode_ordinary(sample)
    assert 256 + MERGES.index(b" \n \n") in ids.tolist()  # merges are used
    assert tokenizer.decode(ids) == sample  # special-token text is plain text


def test_gpt2_tokenizer_offline_raises_data_error(monkeypatch):
    import tiktoken

    def offline(name):
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(DataError, match="TIKTOKEN_CACHE_DIR"):
        GPT2Tokenizer()


def test_gpt2_tokenizer_without_tiktoken_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # makes `import tiktoken` fail
    with pytest.raises(DataError, match=r"pip install 'laser-ota\[text\]'"):
        GPT2Tokenizer()


# --- WikiText-103 -------------------------------------------------------------------------------------


def test_token_cache_is_written_once_and_read_back(tmp_path, write_wikitext):
    folder = write_wikitext(tmp_path) / "wikitext-103-raw"
    raw = {split: (folder / f"wiki.{split}.raw").read_text(encoding="utf-8") for split in ("train", "valid")}
    first = load_wikitext103(tmp_path, ByteTokenizer(), download=False)
    assert first.vocab_size == 256
    for split in ("train", "valid"):
        assert ByteTokenizer().decode(getattr(first, split)) == raw[split]
        assert (folder / f"byte.{split}.bin").stat().st_size == 2 * len(getattr(first, split))

    (folder / "wiki.train.raw").unlink()  # the cache must be used instead
    (folder / "wiki.valid.raw").write_text("different text", encoding="utf-8")
    second = load_wikitext103(tmp_path, ByteTokenizer(), download=False)
    assert second.train.dtype == np.uint16
    assert np.array_equal(second.train, first.train) and np.array_equal(second.valid, first.valid)


def test_chunked_tokenisation_equals_whole_text(tmp_path, write_wikitext, small_encoding):
    raw = write_wikitext(tmp_path) / "wikitext-103-raw" / "wiki.train.raw"
    whole = raw.read_text(encoding="utf-8")
    expected = small_encoding.encode_ordinary(whole)
    per_line = [
        token for line in whole.splitlines(keepends=True) for token in small_encoding.encode_ordinary(line)
    ]
    assert per_line != expected  # cutting at every line would change the tokens
    count = tokenize_file(raw, tmp_path / "tokens.bin", GPT2Tokenizer(small_encoding), chunk_chars=64)
    assert count == len(expected)
    assert np.fromfile(tmp_path / "tokens.bin", dtype=np.uint16).tolist() == expected


def test_cache_is_named_after_the_tokenizer(tmp_path, write_wikitext, small_encoding):
    write_wikitext(tmp_path)
    data = load_wikitext103(tmp_path, GPT2Tokenizer(small_encoding), download=False)
    assert (tmp_path / "wikitext-103-raw" / "gpt2-test.train.bin").is_file()
    assert data.vocab_size == 256 + len(MERGES) and int(data.train.max()) < data.vocab_size


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_download_from_file_url(tmp_path, write_wikitext, monkeypatch):
    source = write_wikitext(tmp_path / "source") / "wikitext-103-raw"
    archive = _zip(
        tmp_path / "wikitext.zip",
        {f"wikitext-103-raw/{p.name}": p.read_bytes() for p in sorted(source.iterdir())},
    )
    monkeypatch.setattr(text, "WIKITEXT103_URL", archive.as_uri())
    monkeypatch.setattr(text, "WIKITEXT103_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    root = tmp_path / "data"
    data = load_wikitext103(root, ByteTokenizer(), download=True)
    assert (root / "wikitext-103-raw" / "wiki.test.raw").read_bytes() == (
        source / "wiki.test.raw"
    ).read_bytes()
    assert ByteTokenizer().decode(data.valid) == (source / "wiki.valid.raw").read_text(encoding="utf-8")
    assert sorted(p.name for p in root.iterdir()) == ["wikitext-103-raw"]  # no archive or scratch left


def test_the_wikitext_archive_is_md5_checked(tmp_path, write_wikitext, monkeypatch):
    """Issue case 1.6: a WikiText archive that is not the release (truncated, replaced) is refused."""
    source = write_wikitext(tmp_path / "source") / "wikitext-103-raw"
    archive = _zip(
        tmp_path / "w.zip", {f"wikitext-103-raw/{p.name}": p.read_bytes() for p in source.iterdir()}
    )
    monkeypatch.setattr(text, "WIKITEXT103_URL", archive.as_uri())
    with pytest.raises(DataError, match="MD5") as error:
        load_wikitext103(tmp_path / "data", ByteTokenizer(), download=True)
    assert "data.download=true" not in str(error.value)  # it was true: the message does not suggest it
    assert not list((tmp_path / "data").glob(".download-*"))  # no partial file left


def test_zip_member_outside_the_root_is_refused(tmp_path):
    archive = _zip(tmp_path / "bad.zip", {"wikitext-103-raw/wiki.train.raw": b"x", "../evil": b"x"})
    root = tmp_path / "a" / "data"
    with pytest.raises(DataError, match="refusing to unpack"):
        text.download_wikitext103(root, url=archive.as_uri())
    assert list(root.iterdir()) == [] and not (tmp_path / "a" / "evil").exists()


def test_missing_wikitext_without_download_names_the_directory(tmp_path):
    with pytest.raises(DataError) as error:
        load_wikitext103(tmp_path, ByteTokenizer(), download=False)
    assert str(tmp_path / "wikitext-103-raw") in str(error.value) and text.WIKITEXT103_URL in str(error.value)


# --- pydoc ----------------------------------------------------------------------------------------------


def test_pydoc_splits_in_proportion(tmp_path):
    from pydoc_data.topics import topics

    whole = "\n\n".join(topics[key] for key in sorted(topics))
    data = load_pydoc(tmp_path, ByteTokenizer(), valid_fraction=0.25)
    train, valid = ByteTokenizer().decode(data.train), ByteTokenizer().decode(data.valid)
    assert train + valid == whole and len(train) > 0 and len(valid) > 0
    assert len(valid) / len(whole) == pytest.approx(0.25, abs=1e-5)
    with pytest.raises(ValueError, match="valid_fraction"):
        load_pydoc(tmp_path, ByteTokenizer(), valid_fraction=1.0)
