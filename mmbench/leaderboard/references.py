"""Reproduction status of every cell of a rules-2 board: our value beside each reference for
the same model and metric, the relative gap and whether our value reproduces it.

References: the dataset card's published results (``[[published]]``, measured on the card's
own split, so compared only when the suite keeps the card's split and filters) and the
suite's parity records made with the row's hyper-parameters (the peer's value over seeds).
A cell with references is *reproduced* when our value reproduces every one of them, else it
*deviates*; a cell without any has *no reference*.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..parity import ALPHA

REPRODUCED, DEVIATES, NO_REFERENCE = "reproduced", "deviates", "no reference"
MARKS = {REPRODUCED: "✓", DEVIATES: "≠"}
RULES = (f"A published value is reproduced when the distance between ours and it is at most 2 × our std over seeds, or when ours lies "
         f"in the range the source reports; a parity run's value when Welch's t-test of our seeds against the "
         f"peer's gives p ≥ {ALPHA:g}.")


@dataclass(frozen=True)
class Reference:
    kind: str  # "published" or "parity"
    value: float  # the published value, or the peer's mean over its seeds
    key: str  # the card's publication key, or the parity record's file
    where: str  # the table in the source (and the entry's note); "" for a parity record
    citation: str  # the publication's citation, or the peer, its version and model
    url: str
    protocol: str  # how the reference was measured, in words
    gap: float | None  # (ours - value) / value
    status: str
    rule: str  # the rule applied, with its numbers

    @property
    def source(self) -> str:
        return f"{self.key}, {self.where}" if self.where else self.key

    def as_dict(self) -> dict:
        return {"kind": self.kind, "value": round(self.value, 8), "source": self.source, "citation": self.citation,
                "url": self.url, "protocol": self.protocol, "gap": None if self.gap is None else round(self.gap, 6),
                "status": self.status, "rule": self.rule}


def cell_status(refs: list[Reference]) -> str:
    if not refs:
        return NO_REFERENCE
    return REPRODUCED if all(r.status == REPRODUCED for r in refs) else DEVIATES


def cell_mark(refs: list[Reference]) -> str:
    """✓ when our value reproduces every reference of the cell, ≠ when it deviates from one, "" without any."""
    return MARKS[cell_status(refs)] if refs else ""


def legend() -> str:
    return (f"{MARKS[REPRODUCED]} / {MARKS[DEVIATES]}: our value reproduces every reference for the cell / deviates "
            "from one (see *Reproduction*); a cell without a mark has no reference.")


def _gap(ours: float, value: float) -> float | None:
    return (ours - value) / value if value else None


def published_reference(p: dict, ours) -> Reference:
    """``p``: a card's published entry (with its ``publication``); ``ours``: the cell's Summary."""
    pub = p["publication"]
    diff, tol = abs(ours.mean - p["value"]), 2 * ours.std
    if "low" in p and p["low"] <= ours.mean <= p["high"]:
        status, rule = REPRODUCED, f"ours within the reported range [{p['low']:.4f}, {p['high']:.4f}]"
    else:
        status = REPRODUCED if diff <= tol else DEVIATES
        rule = f"distance {diff:.4f} {'≤' if diff <= tol else '>'} 2 × std {tol:.4f}"
    protocol = "; ".join(f"{k}: {pub[k]}" for k in ("split", "masking", "selection", "note") if pub.get(k))
    return Reference("published", p["value"], p["source"], p["table"] + (f" ({p['note']})" if p.get("note") else ""),
                     pub["citation"], pub["url"], protocol, _gap(ours.mean, p["value"]), status, rule)


def parity_reference(rec: dict, metric: str, ours) -> Reference:
    """The peer's side of a parity record on ``metric`` against the cell's Summary ``ours``."""
    from scipy import stats

    theirs = rec["comparison"][metric]["theirs"]
    n = len(rec["theirs"])
    if min(ours.n, n) < 2 or ours.std == theirs["std"] == 0:  # no spread to test against: equality only
        p = 1.0 if ours.mean == theirs["mean"] else 0.0
    else:
        p = float(stats.ttest_ind_from_stats(ours.mean, ours.std, ours.n, theirs["mean"], theirs["std"], n,
                                             equal_var=False).pvalue)
    status = REPRODUCED if p >= ALPHA else DEVIATES
    peer = rec["peer"]
    return Reference("parity", theirs["mean"], f"parity/{rec['model']}-{peer['name']}.json", "",
                     f"{peer['name']} {peer['version']} ({rec['mapping']['peer_model']}), run by `mmbench parity`", "",
                     f"this board's split, evaluator and stopping rule; seeds {rec['seeds']}",
                     _gap(ours.mean, theirs["mean"]), status,
                     f"Welch's t-test p = {p:.4f} {'≥' if p >= ALPHA else '<'} {ALPHA:g}")


def check_metrics(card) -> None:
    """Every metric of the card's published results is our canonical name of a known metric."""
    from ..errors import ConfigError
    from ..evaluate.metrics import canonical

    for i, p in enumerate(card.published):
        try:
            name = canonical(p["metric"])
        except ConfigError as e:
            raise ConfigError(f"published[{i}].metric: {e}", where=str(card.path)) from None
        if name != p["metric"]:
            raise ConfigError(f"published[{i}].metric {p['metric']!r} must be written {name!r}", where=str(card.path))


def card_published(suite) -> tuple[list[dict], str]:
    """The card's published results that this board can be compared with, and why not when none can.
    A dataset without a card here (an imported one) has none."""
    from ..errors import MMBenchError

    try:
        card = suite.card()
    except MMBenchError:
        return [], ""
    if not card.published:
        return [], ""
    check_metrics(card)
    if suite.data.get("split", card.split) != card.split or suite.data.get("filters", card.filters) != card.filters:
        return [], (f"The card of {card.name} lists published results, measured on its own split and filters; "
                    "this suite sets others, so they are not compared.")
    return card.published, ""


def attach(lb, suite) -> str:
    """Fill each row's ``references`` (metric -> [Reference]); returns a note when the card's
    published results do not apply to this board."""
    published, note = card_published(suite)
    for row in lb.rows:
        row.references = {}
        for m in lb.columns:
            s = row.test.get(m)
            if s is None:
                continue
            refs = [published_reference(p, s) for p in published if p["model"] == row.model and p["metric"] == m]
            refs += [parity_reference(rec, m, s) for rec in lb.parity
                     if rec["model"] == row.model and rec["params"] == row.params and m in rec["comparison"]]
            if refs:
                row.references[m] = refs
    return note


def section_rows(lb) -> list[list[str]]:
    """One line per reference of every column that has one on this board, and a *no reference*
    line for each other row of that column: model, metric, ours, reference, gap, status, rule, source."""
    out = []
    for m in [m for m in lb.columns if any(m in r.references for r in lb.rows)]:
        for r in lb.rows:
            s = r.test.get(m)
            ours = "-" if s is None else f"{s.mean:.4f} ± {s.std:.4f}"
            for ref in r.references.get(m, []):
                gap = "-" if ref.gap is None else f"{100 * ref.gap:+.1f}%"
                out.append([r.label, m, ours, f"{ref.value:.4f}", gap, ref.status, ref.rule, ref.source])
            if m not in r.references:
                out.append([r.label, m, ours, "-", "-", NO_REFERENCE, "-", "-"])
    return out


HEADERS = ["model", "metric", "ours", "reference", "gap", "status", "rule", "source"]


def sources(lb) -> list[str]:
    """Each source the section names, once: its citation, URL and protocol."""
    seen = {}
    for r in lb.rows:
        for refs in r.references.values():
            for ref in refs:
                seen.setdefault(ref.key, f"`{ref.key}`: {ref.citation}" + (f" <{ref.url}>" if ref.url else "")
                                + f". {ref.protocol[:1].upper()}{ref.protocol[1:]}.")
    return [seen[k] for k in sorted(seen)]


def intro() -> str:
    return (f"Each cell beside the references for its model and metric: results published on this dataset (listed "
            f"in its card) and this suite's parity runs made with the row's hyper-parameters. Gap: (ours − reference) "
            f"/ reference. {RULES} A column missing here has no reference.")


def as_json(row) -> dict:
    return {m: {"status": cell_status(row.references.get(m, [])),
                "references": [ref.as_dict() for ref in row.references.get(m, [])]} for m in sorted(row.test)}
