"""Raw-input encoders (pixels, token ids): values against PIL and the vocabulary file, media
through a local HTTP mirror, and an end-to-end model trained on what they store."""
from __future__ import annotations

import io

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import DataError
from mmbench.features.encoders.raw import MiniLMTokens32Encoder, Pixels32Encoder
from mmbench.features.encoders.text import bundled_minilm_dir

from ...conftest import run_cli
from ...data.local_server import serve

PIL = pytest.importorskip("PIL.Image")
RED, BLUE = (255, 0, 0), (0, 0, 255)


def png(size, colour=RED, right=None) -> bytes:
    """A PNG of one colour, or with its right half in ``right``."""
    im = PIL.new("RGB", size, colour)
    if right is not None:
        im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def pixel(row, r, c):
    """Pixel (r, c) of a stored row: height x width x channel order."""
    return tuple(int(v) for v in row[(r * 32 + c) * 3:(r * 32 + c) * 3 + 3])


def vocab_id(word: str) -> int:
    return (bundled_minilm_dir() / "vocab.txt").read_text(encoding="utf-8").split("\n").index(word)


def test_pixels_are_the_resized_centre_crop(tmp_path):
    (tmp_path / "a.png").write_bytes(png((40, 60), (10, 200, 30)))
    # 64 x 48, left red, right blue: resized to 42 x 32, crop columns 5..36 -> the halves meet near column 16
    (tmp_path / "b.png").write_bytes(png((64, 48), RED, right=BLUE))
    enc = Pixels32Encoder()
    out = enc.encode([tmp_path / "a.png", tmp_path / "b.png"])
    assert out.shape == (2, 3072) == (2, enc.dim) and out.dtype == np.float32
    assert set(map(tuple, out[0].reshape(-1, 3))) == {(10, 200, 30)}
    for r in (0, 13, 31):
        assert all(pixel(out[1], r, c) == RED for c in range(12))
        assert all(pixel(out[1], r, c) == BLUE for c in range(20, 32))
    assert enc.key == "image_raw/pixels-32" and enc.reads == "image" and enc.config()["layout"].startswith("height")


def test_undecodable_images_are_failed_rows(tmp_path):
    (tmp_path / "ok.png").write_bytes(png((32, 32)))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    enc = Pixels32Encoder()
    with pytest.raises(DataError, match="bad.png"):
        enc.encode([tmp_path / "bad.png"])
    values, failed = enc.encode_tolerant([tmp_path / "ok.png", tmp_path / "bad.png"])
    assert list(failed) == [1] and pixel(values[0], 5, 5) == RED and not values[1].any()


def test_token_ids_are_the_wordpiece_vocabulary_lines():
    enc = MiniLMTokens32Encoder()
    out = enc.encode(["Hello world", "hello " * 50])
    assert out.shape == (2, 32) and out.dtype == np.float32
    assert out[0, :2].tolist() == [vocab_id("hello"), vocab_id("world")] and not out[0, 2:].any()  # uncased, padded
    assert (out[1] == vocab_id("hello")).all()  # truncated at 32, no [CLS]/[SEP]
    assert enc.key == "text_tokens/minilm-32" and enc.reads == "text"
    assert len(enc.config()["vocab_sha256"]) == 64
    with pytest.raises(DataError, match="text input #1 is int"):
        enc.encode(["ok", 3])


def mirror_card(cards_dir, data):
    """Eight items with a title and a cover URL whose origin is unreachable (port 9): the
    covers come from the mirror only."""
    (data / "mm.inter").write_text("user_id:token\titem_id:token\n" + "".join(
        f"u{u}\ti{(u + k) % 8}\n" for u in range(16) for k in range(5)))
    (data / "mm.item").write_text("item_id:token\ttitle:token_seq\n"
                                  + "".join(f"i{i}\t{'red' if i % 2 else 'blue'} movie {i}\n" for i in range(8)))
    (cards_dir / "mm.toml").write_text(f'''[dataset]
name = "mm"
version = "1"
title = "t"
license = "test"
format = "recbole"
modalities = ["interactions", "text", "image"]

[[sources]]
name = "local"
path = "{data.as_posix()}"

[files]
interactions = "mm.inter"
items = "mm.item"

[text]
fields = ["title"]

[media]
image = "http://127.0.0.1:9/covers/{{item_id}}.png"

[split]
method = "random_loo"
''')
    return find_card("mm")


@pytest.mark.network
def test_raw_inputs_from_a_local_mirror_train_the_end_to_end_model(tmp_path, cards_dir, monkeypatch):
    import torch
    from mmbench_baselines.e2e_fusion import E2EEarlyFusion

    from mmbench.data import sources
    from mmbench.features.extract import MissingMediaWarning, extract_features
    from mmbench.features.pipeline import inputs_for

    monkeypatch.setattr(sources, "BACKOFF", 0.0)
    monkeypatch.setattr(sources, "RETRIES", 1)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    data = tmp_path / "d"
    data.mkdir()
    card = mirror_card(cards_dir, data)
    ds = prepare(card)
    files = {f"/i{i}.png": png((48, 40), RED if i % 2 else BLUE) for i in range(6)}  # i6: absent, i7: broken
    files["/i7.png"] = b"broken"
    with serve(files) as srv:
        pictures, _ = inputs_for(ds, card, Pixels32Encoder.reads, mirror=srv.base, progress=False)
        assert sorted(srv.requests) == sorted(f"/i{i}.png" for i in range(8))
    with pytest.warns(MissingMediaWarning, match="1 of 8 items could not be decoded"):
        image = extract_features(ds.features, Pixels32Encoder(), pictures, cache_dir=tmp_path / "c", progress=False)
    texts, _ = inputs_for(ds, card, MiniLMTokens32Encoder.reads)
    tokens = extract_features(ds.features, MiniLMTokens32Encoder(), texts, cache_dir=tmp_path / "c", progress=False)
    raw = ds.item_raw_ids()
    for row, item in enumerate(raw):
        i = int(item[1:])
        assert bool(image.mask[row]) == (i < 6)
        if i < 6:
            assert pixel(image.values[row], 16, 16) == (RED if i % 2 else BLUE)
        assert tokens.values[row, 0] == vocab_id("red" if i % 2 else "blue") and tokens.mask[row]

    feats = {"image_raw/pixels-32": image, "text_tokens/minilm-32": tokens}
    for chosen in (feats, {"text_tokens/minilm-32": tokens}, {"image_raw/pixels-32": image}):
        m = E2EEarlyFusion(epochs=2, batch_size=16).fit(ds.train_data(), chosen, seed=0)
        s = m.score(torch.arange(ds.n_users))
        assert s.shape == (ds.n_users, ds.n_items) and torch.isfinite(s).all()
        assert m.feature_keys_ == sorted(chosen)


def test_cli_extracts_raw_inputs(tmp_path, cards_dir):
    data = tmp_path / "d"
    data.mkdir()
    mirror_card(cards_dir, data)
    run_cli("prepare", "mm")
    run_cli("features", "extract", "-d", "mm", "-m", "text_tokens", "-e", "minilm-32")
    assert "text_tokens/minilm-32" in run_cli("features", "list", "-d", "mm").stdout
