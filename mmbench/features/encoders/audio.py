"""Audio encoders: audio file -> clip-level statistics of a log-mel spectrogram.

Pipeline of ``audio/logmel-stats`` (128-d), no torchaudio needed:

1. decode with ``soundfile`` (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1) as float32,
   mix to mono (mean over channels), optionally keep only the first ``max_seconds``;
2. resample to 16 kHz with a windowed-sinc polyphase filter (Hann window, 6 zero crossings,
   roll-off 0.99): the algorithm of ``torchaudio.functional.resample`` (default
   ``sinc_interp_hann``), re-implemented with ``torch.nn.functional.conv1d`` in float64;
3. power spectrogram ``|torch.stft|^2`` (n_fft 400 = 25 ms, hop 160 = 10 ms, periodic Hann
   window, centred frames with reflect padding; clips shorter than n_fft are zero-padded to it);
4. 64 mel bands, 0-8000 Hz, **Slaney** mel scale with Slaney area normalisation (the librosa
   default, ``librosa.filters.mel(htk=False, norm='slaney')``; built here in numpy);
   ``mel_scale="htk"`` gives the HTK formula instead;
5. ``log(mel + 1e-6)``, then per band the mean and the (population) standard deviation over
   time: ``[mean_0..mean_63, std_0..std_63]``.

Where torchaudio imports cleanly, step 3-4 can use ``torchaudio.transforms.MelSpectrogram``
with the same parameters (``backend="auto"`` prefers it); the numbers agree to ~1e-5, so
the backend is not part of the cache key.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError, MMBenchError
from .base import Encoder, as_path_str, check_output, optional_import, require_torch, resolve_device

TARGET_SR = 16000


# ------------------------------------------------------------------ decoding
def load_audio(path: Any, *, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` -> (mono float32 waveform, sample rate). ``DataError`` if unreadable."""
    p = as_path_str(path, where="audio input")
    try:
        import soundfile as sf
    except (ImportError, OSError):
        raise MMBenchError("soundfile is not installed", where="audio encoders", hint="pip install soundfile") from None
    try:
        with sf.SoundFile(p) as f:
            sr = int(f.samplerate)
            frames = -1 if max_seconds is None else int(round(float(max_seconds) * sr))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DataError("audio file not found", where=p) from None
    except (RuntimeError, OSError, ValueError, TypeError, EOFError) as e:
        # soundfile.LibsndfileError is a RuntimeError
        raise DataError(f"cannot decode audio ({type(e).__name__}: {e})", where=p) from None
    if sr <= 0:
        raise DataError(f"invalid sample rate {sr}", where=p)
    if data.shape[0] == 0:
        raise DataError("audio file has no samples", where=p)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise DataError("audio contains NaN/inf samples", where=p)
    return np.ascontiguousarray(mono, dtype=np.float32), sr


# ---------------------------------------------------------------- resampling
@lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
    torch = require_torch()
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t = (t * base).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / orig)
    return kernel, width


def resample(wave: np.ndarray, orig_sr: int, new_sr: int = TARGET_SR) -> np.ndarray:
    """Band-limited resampling (torchaudio's ``sinc_interp_hann`` algorithm), deterministic."""
    if orig_sr == new_sr:
        return np.asarray(wave, dtype=np.float32)
    torch = require_torch()
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    kernel, width = _sinc_kernel(orig, new)
    x = torch.from_numpy(np.asarray(wave, dtype=np.float64))[None, None]
    length = x.shape[-1]
    x = torch.nn.functional.pad(x, (width, width + orig))
    y = torch.nn.functional.conv1d(x, kernel, stride=orig)  # (1, new, frames)
    y = y.transpose(1, 2).reshape(-1)
    target = int(math.ceil(new * length / orig))
    return y[:target].numpy().astype(np.float32)


# --------------------------------------------------------------------- mel
def hz_to_mel(f: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: int = TARGET_SR, n_fft: int = 400, n_mels: int = 64, f_min: float = 0.0,
                   f_max: float | None = None, *, mel_scale: str = "slaney", norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filters (n_mels, 1 + n_fft // 2), float32; same maths as ``librosa.filters.mel``."""
    if mel_scale not in ("slaney", "htk"):
        raise ConfigError(f"mel_scale must be 'slaney' or 'htk', not {mel_scale!r}", where="audio encoders")
    f_max = sr / 2.0 if f_max is None else float(f_max)
    n_freqs = 1 + n_fft // 2
    fft_freqs = np.linspace(0.0, sr / 2.0, n_freqs)
    mel_pts = np.linspace(hz_to_mel(f_min, mel_scale), hz_to_mel(f_max, mel_scale), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts, mel_scale)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, n_freqs), dtype=np.float64)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (hz_pts[2:n_mels + 2] - hz_pts[:n_mels]))[:, None]
    elif norm is not None:
        raise ConfigError(f"mel norm must be 'slaney' or None, not {norm!r}", where="audio encoders")
    return weights.astype(np.float32)


# ------------------------------------------------------------------ encoders
class _AudioEncoder(Encoder):
    modality = "audio"

    def _waveform(self, path: Any) -> np.ndarray:
        wave, sr = load_audio(path, max_seconds=self.options.get("max_seconds"))
        return resample(wave, sr, TARGET_SR)

    def _embed(self, wave: np.ndarray, device: str) -> np.ndarray:
        raise NotImplementedError

    def encode(self, inputs: list, *, device: str = "cpu") -> np.ndarray:
        device = resolve_device(device) if inputs else device
        rows = [self._embed(self._waveform(p), device) for p in inputs]
        out = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
        return check_output(out, len(inputs), self.dim, where=f"encoder {self.key}")

    def encode_tolerant(self, inputs: list, *, device: str = "cpu") -> tuple[np.ndarray, dict[int, str]]:
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        failed: dict[int, str] = {}
        if inputs:
            device = resolve_device(device)
        for i, p in enumerate(inputs):
            try:
                wave = self._waveform(p)
            except DataError as e:
                failed[i] = str(e)
                continue
            out[i] = self._embed(wave, device)
        ok = [i for i in range(len(inputs)) if i not in failed]
        if ok:
            check_output(out[ok], len(ok), self.dim, where=f"encoder {self.key}")
        return out, failed


class LogMelStatsEncoder(_AudioEncoder):
    """Per-band mean and std of a 64-band log-mel spectrogram at 16 kHz (128-d).

    Options: ``n_mels`` (64), ``n_fft`` (400), ``hop_length`` (160), ``f_min`` (0), ``f_max``
    (8000), ``mel_scale`` ("slaney" | "htk"), ``max_seconds`` (None = whole file),
    ``backend`` ("auto" | "torch" | "torchaudio").
    """

    name = "logmel-stats"
    defaults = {"n_mels": 64, "n_fft": 400, "hop_length": 160, "f_min": 0.0, "f_max": 8000.0,
                "mel_scale": "slaney", "max_seconds": None, "backend": "auto"}
    LOG_EPS = 1e-6

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.options["backend"] not in ("auto", "torch", "torchaudio"):
            raise ConfigError(f"backend must be auto, torch or torchaudio, not {self.options['backend']!r}",
                              where=f"encoder {self.key}")
        if self.options["mel_scale"] not in ("slaney", "htk"):
            raise ConfigError(f"mel_scale must be 'slaney' or 'htk', not {self.options['mel_scale']!r}",
                              where=f"encoder {self.key}")
        self._fb = None
        self._ta = None  # torchaudio MelSpectrogram, if used
        self._backend: str | None = None

    @property
    def dim(self) -> int:
        return 2 * int(self.options["n_mels"])

    def config(self) -> dict:
        o = self.options
        return {"encoder": self.key, "sample_rate": TARGET_SR, "mono": "mean of channels",
                "resample": "sinc_interp_hann(width=6, rolloff=0.99)",
                "max_seconds": None if o["max_seconds"] is None else float(o["max_seconds"]),
                "n_fft": int(o["n_fft"]), "win_length": int(o["n_fft"]), "hop_length": int(o["hop_length"]),
                "window": "hann(periodic)", "center": True, "pad_mode": "reflect", "power": 2.0,
                "n_mels": int(o["n_mels"]), "f_min": float(o["f_min"]), "f_max": float(o["f_max"]),
                "mel_scale": o["mel_scale"], "mel_norm": "slaney",
                "log": f"ln(mel + {self.LOG_EPS:g})", "stats": "mean, std (population) over frames",
                "dim": self.dim}

    @property
    def backend(self) -> str:
        if self._backend is None:
            want = self.options["backend"]
            ta = optional_import("torchaudio") if want in ("auto", "torchaudio") else None
            if want == "torchaudio" and ta is None:
                raise MMBenchError("torchaudio is not available (not installed or does not import)",
                                   where=f"encoder {self.key}", hint="use backend='torch' (same numbers)")
            self._backend = "torchaudio" if ta is not None else "torch"
        return self._backend

    def log_mel(self, wave: np.ndarray, device: str = "cpu"):
        """(n_mels, frames) log-mel spectrogram (torch tensor) of a 16 kHz waveform."""
        torch = require_torch()
        o = self.options
        n_fft, hop = int(o["n_fft"]), int(o["hop_length"])
        x = torch.from_numpy(np.asarray(wave, dtype=np.float32))
        if x.numel() < n_fft:
            x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
        x = x.to(device)
        if self.backend == "torchaudio":
            if self._ta is None:
                ta = optional_import("torchaudio")
                self._ta = ta.transforms.MelSpectrogram(
                    sample_rate=TARGET_SR, n_fft=n_fft, win_length=n_fft, hop_length=hop,
                    f_min=float(o["f_min"]), f_max=float(o["f_max"]), n_mels=int(o["n_mels"]),
                    window_fn=torch.hann_window, power=2.0, center=True, pad_mode="reflect",
                    norm="slaney", mel_scale=o["mel_scale"])
            mel = self._ta.to(device)(x)
        else:
            if self._fb is None:
                self._fb = torch.from_numpy(mel_filterbank(TARGET_SR, n_fft, int(o["n_mels"]), float(o["f_min"]),
                                                           float(o["f_max"]), mel_scale=o["mel_scale"]))
            win = torch.hann_window(n_fft, periodic=True, dtype=torch.float32, device=device)
            spec = torch.stft(x, n_fft, hop_length=hop, win_length=n_fft, window=win, center=True,
                              pad_mode="reflect", return_complex=True)
            power = spec.real ** 2 + spec.imag ** 2  # (n_freqs, frames)
            mel = self._fb.to(device) @ power
        return torch.log(mel + self.LOG_EPS)

    def _embed(self, wave: np.ndarray, device: str) -> np.ndarray:
        torch = require_torch()
        with torch.inference_mode():
            lm = self.log_mel(wave, device)
            feats = torch.cat([lm.mean(dim=1), lm.std(dim=1, unbiased=False)])
        return feats.float().cpu().numpy()


class MfccStatsEncoder(_AudioEncoder):
    """Per-coefficient mean and std of librosa MFCCs at 16 kHz (2 * n_mfcc, 40-d). Needs librosa.

    Same decoding/resampling as ``audio/logmel-stats``; ``librosa.feature.mfcc`` with
    n_fft 400, hop 160, 64 Slaney mel bands up to 8 kHz, ``power_to_db``, DCT-II (ortho).
    """

    name = "mfcc-stats"
    defaults = {"n_mfcc": 20, "n_mels": 64, "n_fft": 400, "hop_length": 160, "max_seconds": None}

    @property
    def dim(self) -> int:
        return 2 * int(self.options["n_mfcc"])

    @staticmethod
    def _librosa():
        lr = optional_import("librosa")
        if lr is None:
            raise MMBenchError("librosa is not installed", where="encoder audio/mfcc-stats",
                               hint="pip install librosa, or use audio/logmel-stats")
        return lr

    def config(self) -> dict:
        o = self.options
        return {"encoder": self.key, "sample_rate": TARGET_SR, "mono": "mean of channels",
                "resample": "sinc_interp_hann(width=6, rolloff=0.99)",
                "max_seconds": None if o["max_seconds"] is None else float(o["max_seconds"]),
                "librosa": getattr(self._librosa(), "__version__", "?"),
                "n_mfcc": int(o["n_mfcc"]), "n_mels": int(o["n_mels"]), "n_fft": int(o["n_fft"]),
                "hop_length": int(o["hop_length"]), "f_max": TARGET_SR / 2, "stats": "mean, std (population)",
                "dim": self.dim}

    def _embed(self, wave: np.ndarray, device: str) -> np.ndarray:
        lr = self._librosa()
        o = self.options
        y = wave if wave.size >= int(o["n_fft"]) else np.pad(wave, (0, int(o["n_fft"]) - wave.size))
        m = lr.feature.mfcc(y=y.astype(np.float32), sr=TARGET_SR, n_mfcc=int(o["n_mfcc"]), n_fft=int(o["n_fft"]),
                            hop_length=int(o["hop_length"]), n_mels=int(o["n_mels"]), fmax=TARGET_SR / 2)
        return np.concatenate([m.mean(axis=1), m.std(axis=1)]).astype(np.float32)
