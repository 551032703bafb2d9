"""Encoders: contract, numbers against references, failure modes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmbench.errors import ConfigError, DataError, MMBenchError
from mmbench.features.encoders import (
    BUILTIN_ENCODERS,
    EfficientNetLite0Encoder,
    Encoder,
    LogMelStatsEncoder,
    MfccStatsEncoder,
    MiniLMEncoder,
    ResNet50TorchvisionEncoder,
    load_class,
    optional_import,
)
from mmbench.features.encoders import audio as audio_mod

from ..conftest import SHARED_DATA, needs_shared

LFM2K = SHARED_DATA / "lfm2k"
ROOT = Path(__file__).resolve().parents[2]

torch = pytest.importorskip("torch")


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ------------------------------------------------------------------ contract
def test_import_loads_nothing_heavy():
    code = ("import sys; import mmbench.features.encoders, mmbench.features.extract; "
            "heavy = [m for m in ('torch', 'transformers', 'PIL', 'soundfile', 'librosa', 'torchvision') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_builtin_table_points_at_the_classes():
    expect_dims = {"text/all-MiniLM-L6-v2": 384, "image/efficientnet-lite0": 1280,
                   "image/resnet50-torchvision": 2048, "audio/logmel-stats": 128, "audio/mfcc-stats": 40}
    assert set(BUILTIN_ENCODERS) == set(expect_dims)
    for key, spec in BUILTIN_ENCODERS.items():
        cls = load_class(spec)
        assert issubclass(cls, Encoder)
        enc = cls()  # constructing loads nothing
        assert enc.key == key == f"{cls.modality}/{cls.name}"
        assert enc.dim == expect_dims[key]


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        LogMelStatsEncoder(colour="red")
    with pytest.raises(ConfigError, match="normalize"):
        EfficientNetLite0Encoder(normalize="weird")


def test_configs_are_json_and_change_with_options():
    a, b = LogMelStatsEncoder(), LogMelStatsEncoder(n_mels=32)
    json.dumps(a.config())
    assert a.config() != b.config() and b.dim == 64
    assert EfficientNetLite0Encoder().config() != EfficientNetLite0Encoder(normalize="imagenet").config()


def test_optional_import_treats_a_broken_module_as_absent(tmp_path, monkeypatch):
    (tmp_path / "brokenvision.py").write_text("raise OSError('libtorch_cuda.so: cannot open shared object file')\n")
    (tmp_path / "brokenops.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert optional_import("brokenvision") is None
    assert optional_import("brokenops") is None
    assert optional_import("surely_not_installed_pkg") is None
    assert optional_import("json") is json


# ---------------------------------------------------------------------- text
@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder()


def test_minilm_vectors(minilm):
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market crashed today."]
    v = minilm.encode(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3
    assert cos(v[0], v[1]) > cos(v[1], v[2]) + 0.3
    np.testing.assert_array_equal(minilm.encode(texts), v)  # deterministic
    # batch composition (length sorting, padding) changes nothing beyond float noise
    np.testing.assert_allclose(minilm.encode(texts[2:]), v[2:], atol=1e-5)
    cfg = minilm.config()
    assert cfg["max_length"] == 256 and cfg["weights_sha256"].startswith("model.safetensors:")


def test_minilm_truncates_long_text(minilm):
    long = "rock " * 2000
    v = minilm.encode([long, long + " and a very different ending about cooking pasta"])
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)  # only the first 256 tokens count


def test_minilm_rejects_non_text(minilm):
    with pytest.raises(DataError, match="expected str"):
        minilm.encode(["ok", 3])


def test_minilm_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MMBenchError, match="not a model folder"):
        MiniLMEncoder(model=str(tmp_path / "nope")).config()


def test_minilm_equals_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    from mmbench.features.encoders.text import bundled_minilm_dir

    texts = ["hello world", "gothic, j-rock, visual kei", "ambient " * 400]
    ref = st.SentenceTransformer(str(bundled_minilm_dir()), device="cpu").encode(texts)
    np.testing.assert_allclose(minilm.encode(texts), ref, atol=1e-5)


def _lfm2k_item_to_artist() -> dict[int, int]:
    def rows(p):
        with open(p, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            col = header.index("itemID")
            return [int(line.rstrip("\n").split("\t")[col]) for line in f]

    items, artists = rows(LFM2K / "lfm2k.inter"), rows(LFM2K / "lfm2k_og_ids.inter")
    assert len(items) == len(artists)
    m: dict[int, int] = {}
    for i, a in zip(items, artists):
        assert m.setdefault(i, a) == a  # row-wise 1:1 map
    return m


@needs_shared("lfm2k", "all-MiniLM-L6-v2.npy", "lfm2k_text.tsv", "lfm2k.inter", "lfm2k_og_ids.inter")
def test_minilm_reproduces_published_lfm2k_features(minilm):
    item2artist = _lfm2k_item_to_artist()
    texts = {}
    with open(LFM2K / "lfm2k_text.tsv", encoding="utf-8") as f:
        f.readline()
        for line in f:
            aid, text = line.rstrip("\n").split("\t", 1)
            texts[int(aid)] = text
    ref = np.load(LFM2K / "all-MiniLM-L6-v2.npy", allow_pickle=False)
    items = list(range(10)) + [100, 250, 499, 700, 901, 1000, 1200, 1300, 1400, 1424]
    v = minilm.encode([texts[item2artist[i]].replace(",", ", ") for i in items])
    sims = np.sum(v * ref[items], axis=1) / np.linalg.norm(ref[items], axis=1)
    assert sims.min() >= 0.9999, sims
    # and it is not trivially true: a wrong item mapping would fail
    assert float(np.sum(v[0] * ref[items[1]])) < 0.99


# --------------------------------------------------------------------- image
@pytest.fixture(scope="module")
def effnet():
    return EfficientNetLite0Encoder()


@pytest.fixture()
def images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = {
        "red": tmp_path / "red.png",
        "red2": tmp_path / "red2.jpg",
        "noise": tmp_path / "noise.png",
    }
    Image.new("RGB", (320, 240), (200, 30, 30)).save(paths["red"])
    Image.new("RGB", (240, 300), (215, 40, 35)).save(paths["red2"], quality=95)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(paths["noise"])
    return paths


def test_efficientnet_features(effnet, images):
    paths = [images["red"], images["red2"], images["noise"]]
    v = effnet.encode(paths)
    assert v.shape == (3, 1280) and v.dtype == np.float32 and np.isfinite(v).all()
    assert (v >= 0).all() and (v <= 6).all()  # average of ReLU6 activations
    d_reds, d_noise = np.linalg.norm(v[0] - v[1]), np.linalg.norm(v[0] - v[2])
    assert d_reds < 0.5 * d_noise
    np.testing.assert_array_equal(effnet.encode(paths), v)
    np.testing.assert_allclose(effnet.encode([str(paths[2])])[0], v[2], atol=1e-4)


def test_efficientnet_decodes_odd_modes(effnet, tmp_path):
    from PIL import Image

    g = tmp_path / "gray.png"
    Image.new("L", (50, 80), 128).save(g)  # small, grayscale
    t = tmp_path / "alpha.png"
    Image.new("RGBA", (100, 100), (0, 0, 0, 0)).save(t)  # fully transparent -> white
    w = tmp_path / "white.png"
    Image.new("RGB", (100, 100), (255, 255, 255)).save(w)
    v = effnet.encode([g, t, w])
    assert np.isfinite(v).all()
    np.testing.assert_allclose(v[1], v[2], atol=1e-5)


def test_efficientnet_classifies_sample_images(effnet):
    """End-to-end check of weights + preprocessing: ImageNet top-1 of known photos."""
    datasets = pytest.importorskip("sklearn.datasets")
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name in ("china.jpg", "flower.jpg"):
            p = Path(d) / name
            Image.fromarray(datasets.load_sample_image(name)).save(p, quality=95)
            paths.append(p)
        feats = effnet.encode(paths)
        with torch.inference_mode():
            logits = effnet._model._fc(torch.from_numpy(feats))
    top1 = logits.argmax(1).tolist()
    assert top1 == [698, 985]  # ImageNet 698 = palace, 985 = daisy


def test_corrupt_or_missing_image_is_a_data_error_naming_the_file(effnet, images, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        effnet.encode([images["red"], bad])
    with pytest.raises(DataError, match="nope.png.*not found"):
        effnet.encode([tmp_path / "nope.png"])
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(images["noise"].read_bytes()[:500])
    v, failed = effnet.encode_tolerant([images["red"], bad, trunc, images["noise"]])
    assert sorted(failed) == [1, 2] and "broken.jpg" in failed[1] and "trunc.png" in failed[2]
    assert not v[1].any() and not v[2].any()
    np.testing.assert_allclose(v[[0, 3]], effnet.encode([images["red"], images["noise"]]), atol=1e-4)


def test_preprocessing_matches_torchvision(images):
    tv = optional_import("torchvision")
    if tv is None:
        pytest.skip("torchvision not importable here")
    from PIL import Image

    from mmbench.features.encoders.image import load_image

    T = tv.transforms
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])
    for p in images.values():
        ref = tf(Image.open(p).convert("RGB")).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(load_image(p), ref)


def test_resnet50_needs_torchvision_or_says_why(images):
    enc = ResNet50TorchvisionEncoder()
    if optional_import("torchvision") is None:
        with pytest.raises(MMBenchError, match="torchvision is not available"):
            enc.encode([images["red"]])
    else:
        try:
            v = enc.encode([images["red"], images["noise"]])
        except MMBenchError as e:  # offline without cached weights: a clear message
            assert "weights" in str(e)
        else:
            assert v.shape == (2, 2048) and np.isfinite(v).all()


# --------------------------------------------------------------------- audio
SR = 16000


@pytest.fixture()
def wavs(tmp_path):
    sf = pytest.importorskip("soundfile")
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    t44 = np.arange(2 * 44100) / 44100
    files = {
        "s440": (0.5 * np.sin(2 * np.pi * 440 * t), SR),
        "s445": (0.5 * np.sin(2 * np.pi * 445 * t), SR),
        "noise": (0.3 * rng.standard_normal(2 * SR), SR),
        # channels 0.8 s and 0.2 s: their mean is the 0.5 s of "s440"
        "stereo440": (np.stack([0.8 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 440 * t)], axis=1), SR),
        "s440_44k": (0.5 * np.sin(2 * np.pi * 440 * t44), 44100),
        "short": (0.5 * np.sin(2 * np.pi * 440 * np.arange(100) / SR), SR),
    }
    out = {}
    for name, (x, sr) in files.items():
        p = tmp_path / f"{name}.wav"
        sf.write(p, x.astype(np.float32), sr, subtype="FLOAT")
        out[name] = p
    return out


def test_logmel_stats(wavs):
    enc = LogMelStatsEncoder(backend="torch")
    v = enc.encode([wavs["s440"], wavs["s445"], wavs["noise"]])
    assert v.shape == (3, 128) and v.dtype == np.float32 and np.isfinite(v).all()
    assert np.linalg.norm(v[0] - v[1]) < 0.5 * np.linalg.norm(v[0] - v[2])
    np.testing.assert_array_equal(enc.encode([wavs["s440"]]), v[:1])
    # stereo is mixed down by averaging the channels
    np.testing.assert_allclose(enc.encode([wavs["stereo440"]])[0], v[0], atol=1e-5)
    # a 44.1 kHz file is resampled to 16 kHz: nearly the same features as the native 16 kHz file
    v44 = enc.encode([wavs["s440_44k"]])[0]
    assert np.linalg.norm(v44 - v[0]) < 0.1 * np.linalg.norm(v[0] - v[1])
    # a clip shorter than one FFT window still gives finite features
    assert np.isfinite(enc.encode([wavs["short"]])).all()
    # the mean part is the per-band mean of the log-mel: the 440 Hz band is the loudest
    band_hz = audio_mod.mel_to_hz(np.linspace(audio_mod.hz_to_mel(0.0), audio_mod.hz_to_mel(8000.0), 66))[1:-1]
    assert abs(band_hz[int(np.argmax(v[0, :64]))] - 440) < 60


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for htk in (False, True):
        ours = audio_mod.mel_filterbank(16000, 400, 64, 0.0, 8000.0, mel_scale="htk" if htk else "slaney")
        ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=64, fmin=0.0, fmax=8000.0, htk=htk, norm="slaney")
        assert ours.shape == ref.shape == (64, 201)
        np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
        assert np.abs(ours - ref).max() < 1e-5 * ref.max()


def test_resampler_is_band_limited_and_exact_on_a_sine():
    for sr_in in (44100, 22050, 48000, 8000):
        t = np.arange(sr_in) / sr_in
        y = audio_mod.resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr_in, SR)
        assert len(y) == int(np.ceil(SR * len(t) / sr_in))
        ref = np.sin(2 * np.pi * 440 * np.arange(len(y)) / SR)
        mid = slice(200, len(y) - 200)
        assert np.abs(y[mid] - ref[mid]).max() < 2e-3, sr_in
    # a 12 kHz tone, above the new Nyquist (8 kHz), is removed, not aliased
    t = np.arange(44100) / 44100
    y = audio_mod.resample(np.sin(2 * np.pi * 12000 * t).astype(np.float32), 44100, SR)
    assert np.abs(y[200:-200]).max() < 0.02


def test_resampler_matches_torchaudio():
    ta = optional_import("torchaudio")
    if ta is None:
        pytest.skip("torchaudio not importable here")
    x = np.random.default_rng(1).standard_normal(44100).astype(np.float32)
    ref = ta.functional.resample(torch.from_numpy(x).double(), 44100, SR).float().numpy()
    np.testing.assert_allclose(audio_mod.resample(x, 44100, SR), ref, atol=1e-5)


def test_torchaudio_backend_agrees(wavs):
    if optional_import("torchaudio") is None:
        with pytest.raises(MMBenchError, match="torchaudio is not available"):
            LogMelStatsEncoder(backend="torchaudio").encode([wavs["s440"]])
        assert LogMelStatsEncoder().backend == "torch"
        pytest.skip("torchaudio not importable here (checked the fallback instead)")
    paths = [wavs["s440"], wavs["noise"], wavs["s440_44k"]]
    a = LogMelStatsEncoder(backend="torch").encode(paths)
    b = LogMelStatsEncoder(backend="torchaudio").encode(paths)
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_corrupt_audio_is_a_data_error_naming_the_file(wavs, tmp_path):
    enc = LogMelStatsEncoder()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    empty = tmp_path / "empty.wav"
    import soundfile as sf

    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(DataError, match="bad.wav"):
        enc.encode([wavs["s440"], bad])
    with pytest.raises(DataError, match="empty.wav.*no samples"):
        enc.encode([empty])
    v, failed = enc.encode_tolerant([bad, wavs["s440"], tmp_path / "missing.flac"])
    assert sorted(failed) == [0, 2] and "missing.flac" in failed[2]
    np.testing.assert_array_equal(v[1], enc.encode([wavs["s440"]])[0])


def test_mfcc_stats(wavs):
    pytest.importorskip("librosa")
    enc = MfccStatsEncoder()
    v = enc.encode([wavs["s440"], wavs["s445"], wavs["noise"]])
    assert v.shape == (3, 40) and np.isfinite(v).all()
    assert np.linalg.norm(v[0] - v[1]) < 0.5 * np.linalg.norm(v[0] - v[2])
    assert enc.config()["librosa"]
