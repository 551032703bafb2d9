"""Extraction driver: batching, resume after a crash, missing media, store round trip."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmbench.errors import DataError, RegistryError
from mmbench.features.encoders import Encoder
from mmbench.features.extract import MissingMediaWarning, cache_key, extract_features
from mmbench.features.store import FeatureStore, feature_fingerprint


class Interrupted(RuntimeError):
    pass


class CountingText(Encoder):
    """Deterministic fake: vector from the text's bytes; counts calls; can crash on call k."""

    modality = "text"
    name = "fake"
    defaults = {"crash_on_call": None, "scale": 1.0}

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = 0
        self.items = 0

    @property
    def dim(self) -> int:
        return 4

    def config(self) -> dict:
        return {"encoder": self.key, "scale": self.options["scale"]}

    def encode(self, inputs, *, device="cpu"):
        self.calls += 1
        if self.options["crash_on_call"] == self.calls:
            raise Interrupted("simulated crash")
        self.items += len(inputs)
        out = np.zeros((len(inputs), 4), dtype=np.float32)
        for r, s in enumerate(inputs):
            b = s.encode()
            out[r] = [len(b), sum(b) % 97, b[0] if b else 0, 1.0]
        return out * np.float32(self.options["scale"])


class FileLen(Encoder):
    """Fake media encoder: reads a file; content starting with b'BAD' is undecodable."""

    modality = "image"
    name = "filelen"
    defaults = {}

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = 0

    @property
    def dim(self) -> int:
        return 3

    def config(self) -> dict:
        return {"encoder": self.key}

    def encode(self, inputs, *, device="cpu"):
        self.calls += 1
        out = []
        for p in inputs:
            try:
                data = Path(p).read_bytes()
            except FileNotFoundError:
                raise DataError("file not found", where=str(p)) from None
            if data.startswith(b"BAD"):
                raise DataError("cannot decode", where=str(p))
            out.append([len(data), data[0], 1.0])
        return np.asarray(out, dtype=np.float32)


TEXTS = [f"item number {i} " + "x" * i for i in range(10)]


def run(tmp_path, enc, inputs, *, store_dir="store", cache="cache", bs=3, **kw):
    store = FeatureStore(tmp_path / store_dir, len(inputs))
    feat = extract_features(store, enc, inputs, batch_size=bs, progress=False, cache_dir=tmp_path / cache, **kw)
    return store, feat


def test_resume_after_crash_encodes_only_the_remaining_batches(tmp_path):
    # 10 items, batch 3 -> batches at 0, 3, 6, 9; crash on the 3rd batch
    enc = CountingText(crash_on_call=3)
    with pytest.raises(Interrupted):
        run(tmp_path, enc, TEXTS, keep_cache=True)
    (cdir,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in cdir.glob("batch_*.npy")) == ["batch_0.npy", "batch_3.npy"]
    assert "text/fake" not in FeatureStore(tmp_path / "store", 10)

    again = CountingText()
    _, feat = run(tmp_path, again, TEXTS)
    assert again.calls == 2 and again.items == 4  # batches 6 and 9 only
    assert feat.meta["n_resumed_rows"] == 6
    assert not cdir.exists()  # cache removed after success (keep_cache=False)

    fresh = CountingText()
    _, ref = run(tmp_path, fresh, TEXTS, store_dir="store2", cache="cache2")
    assert fresh.calls == 4
    np.testing.assert_array_equal(feat.values, ref.values)
    np.testing.assert_array_equal(feat.values, CountingText().encode(TEXTS))
    assert feat.fingerprint == ref.fingerprint and feat.mask.all()


def test_cache_key_changes_with_config_inputs_and_batch_size(tmp_path):
    base = cache_key(CountingText(), TEXTS, 3)
    assert cache_key(CountingText(), list(TEXTS), 3) == base
    assert cache_key(CountingText(scale=2.0), TEXTS, 3) != base
    assert cache_key(CountingText(), TEXTS[:-1] + ["changed"], 3) != base
    assert cache_key(CountingText(), TEXTS[:-1] + [None], 3) != base
    assert cache_key(CountingText(), TEXTS, 4) != base
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    k1 = cache_key(FileLen(), [f], 3)
    f.write_bytes(b"abcd")  # size (and mtime) change -> new key
    assert cache_key(FileLen(), [f], 3) != k1


def test_stale_cache_from_other_config_is_not_reused(tmp_path):
    with pytest.raises(Interrupted):
        run(tmp_path, CountingText(crash_on_call=3), TEXTS, keep_cache=True)
    other = CountingText(scale=2.0)
    _, feat = run(tmp_path, other, TEXTS)
    assert other.calls == 4
    np.testing.assert_array_equal(feat.values, 2 * CountingText().encode(TEXTS))


def test_corrupt_cached_batch_is_re_encoded(tmp_path):
    with pytest.raises(Interrupted):
        run(tmp_path, CountingText(crash_on_call=3), TEXTS, keep_cache=True)
    (cdir,) = (tmp_path / "cache").iterdir()
    (cdir / "batch_3.npy").write_bytes(b"\x93NUMPY garbage")
    again = CountingText()
    _, feat = run(tmp_path, again, TEXTS)
    assert again.calls == 3  # batch 3 again, plus 6 and 9
    np.testing.assert_array_equal(feat.values, CountingText().encode(TEXTS))


def test_none_and_corrupt_media_become_missing_rows(tmp_path):
    files = []
    for i in range(7):
        p = tmp_path / f"m{i}.bin"
        p.write_bytes(b"BAD!" if i == 4 else bytes([65 + i]) * (i + 1))
        files.append(p)
    inputs: list = list(files)
    inputs[1] = None
    inputs[5] = tmp_path / "gone.bin"  # missing file
    enc = FileLen()
    with pytest.warns(MissingMediaWarning, match=r"2 of 7 items.*m4\.bin.*gone\.bin"):
        store, feat = run(tmp_path, enc, inputs)
    expect_mask = np.array([True, False, True, True, False, False, True])
    np.testing.assert_array_equal(feat.mask, expect_mask)
    assert not feat.values[~expect_mask].any()
    for i in np.flatnonzero(expect_mask):
        np.testing.assert_array_equal(feat.values[i], [i + 1, 65 + i, 1.0])
    assert feat.meta["n_missing"] == 3 and feat.meta["n_failed"] == 2 and feat.meta["n_no_input"] == 1
    assert [f["index"] for f in feat.meta["failed"]] == [4, 5]

    # lands in the store: reload from disk, fingerprint checks out
    loaded = FeatureStore(tmp_path / "store", 7).get("image/filelen")
    assert loaded.fingerprint == feat.fingerprint == feature_fingerprint(feat.values, feat.mask)
    np.testing.assert_array_equal(loaded.mask, expect_mask)
    assert loaded.meta["config"] == {"encoder": "image/filelen"} and loaded.meta["encoder"] == "image/filelen"


def test_all_none_batch_makes_no_encoder_call(tmp_path):
    enc = CountingText()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no failures -> no warning
        _, feat = run(tmp_path, enc, [None, None, None, "a", "b"], key="text/custom")
    assert enc.calls == 1 and feat.key == "text/custom"
    np.testing.assert_array_equal(feat.mask, [False, False, False, True, True])


def test_input_count_must_match_the_store(tmp_path):
    store = FeatureStore(tmp_path / "s", 5)
    with pytest.raises(DataError, match="3 inputs but the dataset has 5 items"):
        extract_features(store, CountingText(), TEXTS[:3], progress=False, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="expected str"):
        extract_features(FeatureStore(tmp_path / "s", 2), CountingText(), ["a", 1], progress=False,
                         cache_dir=tmp_path / "c")


def test_encoder_breaking_the_contract_is_reported(tmp_path):
    class Wrong(CountingText):
        def encode(self, inputs, *, device="cpu"):
            return np.zeros((len(inputs), 5), dtype=np.float32)

    class NaNs(CountingText):
        def encode(self, inputs, *, device="cpu"):
            return np.full((len(inputs), 4), np.nan, dtype=np.float32)

    for bad in (Wrong(), NaNs()):
        with pytest.raises(RegistryError):
            run(tmp_path, bad, TEXTS[:4])


def test_real_audio_encoder_through_the_driver(tmp_path):
    sf = pytest.importorskip("soundfile")
    pytest.importorskip("torch")
    from mmbench.features.encoders import LogMelStatsEncoder

    t = np.arange(8000) / 16000
    paths = []
    for i, f in enumerate((300, 600, 900)):
        p = tmp_path / f"a{i}.wav"
        sf.write(p, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), 16000)
        paths.append(p)
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"OggS not really")
    enc = LogMelStatsEncoder()
    with pytest.warns(MissingMediaWarning, match="bad.ogg"):
        _, feat = run(tmp_path, enc, [paths[0], bad, None, paths[1], paths[2]], bs=2)
    assert feat.key == "audio/logmel-stats" and feat.dim == 128
    np.testing.assert_array_equal(feat.mask, [True, False, False, True, True])
    np.testing.assert_allclose(feat.values[[0, 3, 4]], enc.encode(paths), atol=1e-6)
    assert feat.meta["config"] == enc.config()
    assert os.listdir(tmp_path / "cache") == []
