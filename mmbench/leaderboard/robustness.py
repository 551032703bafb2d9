"""The board's two views of items a model cannot see: ID-only rows on a cold-start board and
the robustness view (the main metric against the share of items that lost a modality).

Both are read from the final records alone. A row is *ID-only* when its records read no
feature (``features`` is empty): on a board with a ``/cold`` column it is marked, since such
a model has no signal for an item without training interactions. The robustness view
averages over seeds the records' ``robustness`` blocks made with the suite's
``[robustness]`` spec (:mod:`mmbench.robustness`); rendering lives in :mod:`.text` and
:mod:`.html`, the rows of its table here so that both show the same cells.
"""
from __future__ import annotations

from ..evaluate.metrics import split_group

ID_ONLY = "°"  # an ID-only row on a board with /cold columns

ID_ONLY_NOTE = (f"{ID_ONLY}: ID-only model (reads no item content): it cannot score an item without training "
                "interactions and ranks such items by what training left in their rows. Our evaluator ranks "
                "every item; Pop gives a cold item popularity 0 (below every warm item, ties by item index), "
                "BPR-MF its item factors, which training only ever moved as sampled negatives (pushed down, "
                "not learned). Its `/cold` values are that floor, not a cold-start method; it stops early and is "
                "selected on the same metric over all items.")


def has_cold(columns: list[str]) -> bool:
    """Whether a board shows a metric restricted to the items without training interactions."""
    return any(split_group(c)[1] == "cold" for c in columns)


def row_fields(recs: list[dict], spec, metric: str, confidence: float) -> dict:
    """A row's robustness fields from its final records: ``robustness`` (dropped name ->
    one Summary over seeds per share of ``spec``, for names every seed evaluated),
    ``missing`` (how the model treats a missing row) and ``robustness_note`` (why it has no
    curve, if so)."""
    from ..robustness import curves
    from ..stats import summarize

    blocks = [r.get("robustness") for r in recs]
    made = [b for b in blocks if spec.matches(b)]
    if len(made) < len(recs):
        return {"robustness_note": f"{len(recs) - len(made)} of its {len(recs)} records have no robustness block "
                                   "made with this suite's [robustness] spec"}
    got = curves(made, spec, metric)
    full = {k: [summarize(v, confidence) for v in vals] for k, vals in got.items()
            if all(len(v) == len(recs) for v in vals)}
    note = made[0].get("skipped", "") or ("" if full else "it reads none of the dropped modalities")
    return {"robustness": full, "missing": made[0].get("missing_rows", ""), "robustness_note": note}


def table(lb) -> tuple[list[str], list[list[str]], list[tuple[str, str]]]:
    """(headers, rows, notes) of the robustness table: one row per model and dropped name,
    ``mean ± std`` at each share, then how the model treats a missing row; notes: the models
    without a curve and why."""
    spec = lb.robustness
    headers = ["Model", "Dropped"] + [f"p = {p:g}" for p in spec["shares"]] + ["Missing rows"]
    rows, notes = [], []
    for r in lb.rows:
        for name in spec["keys"]:
            if name in r.robustness:
                rows.append([r.label, name] + [f"{s.mean:.4f} ± {s.std:.4f}" for s in r.robustness[name]]
                            + [r.missing])
        if not r.robustness:
            notes.append((r.label, r.robustness_note))
    return headers, rows, notes


def intro(lb) -> str:
    spec = lb.robustness
    return (f"Test {spec['metric']} (mean ± std over seeds) of each final model when one modality is removed at "
            f"test time for a share p of the items: the same items for every model and seed (a seeded draw, "
            f"seed {spec['seed']}, nested in p), scored by the one trained model, without retraining. The model "
            "sees those rows as missing and treats them as it treats any missing row (last column: a learned "
            "token, dropping the modality, or imputing it), so all of them are compared on the same footing. "
            "p = 0 is the plain evaluation; p = 1 removes the modality for every item.")
