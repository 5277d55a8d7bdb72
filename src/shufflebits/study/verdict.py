"""Whether a run can compare ciphers at all: the report's first line and the terminal summary's.

A cipher comparison means something only when there is something to hide: a
victim that recognises people, and attacks that find attributes in its
plaintext features. When either figure is too small every cipher looks like
chance, strong and weak alike, and the reader is told so, with the figure,
the threshold and the option that would give a stronger victim.
"""

from __future__ import annotations

from .numbers import figure

MIN_VICTIM_RANK1 = 0.05
"""Plaintext re-ID rank-1 of the victim on the users' images (its own job) below which it hardly recognises anyone.

Below 5% the features carry so little identity that linking users, or telling
a leaking cipher from a hiding one by re-ID, is lost in noise of a few queries.
"""

MIN_PLAINTEXT_ADVANTAGE = 0.03
"""Balanced accuracy by which plaintext attribute inference must clear the top of its chance interval.

The interval is where the attack's own predictions land against shuffled
labels (95%); an attack barely above it on plaintext leaves no room for a
cipher to lower it, so "hides attributes" could not be told from "nothing to find".
"""

PROFILE_ORDER = ("smoke", "quick", "default", "paper")
REAL_WEIGHTS = "`--victim osnet_x0_25 --weights osnet_x0_25_msmt17.pth` (real torchreid OSNet)"


def _suggestion(results: dict) -> str:
    """The option that gives a stronger victim than this run's."""
    profile = results.get("profile")
    trained_here = bool(results.get("training_history"))
    if not trained_here:
        return "a victim that fits these images better (its own training data's size, `--profile paper`)"
    if profile in PROFILE_ORDER[:2]:
        return f"`--profile default` (a longer-trained victim) or {REAL_WEIGHTS}"
    if profile == "default":
        return f"{REAL_WEIGHTS} or `--profile paper`"
    return REAL_WEIGHTS


def verdict(results: dict) -> dict:
    """``ok``, each ``checks`` figure (value, threshold, passed) and one ``headline`` sentence for the reader.

    A figure that was not measured (a failed stage) is left out; ``ok`` is then
    about the figures that exist.
    """
    checks = []
    rank1 = ((results.get("reid") or {}).get("plaintext") or {}).get("rank1")
    if rank1 is not None:
        checks.append(("the victim's plaintext re-ID rank-1 on the users' images", rank1, MIN_VICTIM_RANK1))
    plaintext = next(
        (
            row
            for row in results.get("leakage") or []
            if row["cipher"] == "plaintext" and row["metric"] == "attr_bacc_mean" and row.get("chance_ci")
        ),
        None,
    )
    if plaintext is not None and plaintext.get("value") is not None:
        advantage = plaintext["value"] - plaintext["chance_ci"][1]
        checks.append(
            (
                "plaintext attribute inference's lead over the top of its chance interval (balanced accuracy)",
                advantage,
                MIN_PLAINTEXT_ADVANTAGE,
            )
        )
    rows = [{"figure": name, "value": value, "threshold": low, "passed": value >= low} for name, value, low in checks]
    failed = [row for row in rows if not row["passed"]]

    def said(items):
        return "; ".join(
            f"{c['figure']} is {figure(c['value'])} (needs at least {figure(c['threshold'])})" for c in items
        )

    if failed:
        headline = (
            f"This run cannot compare ciphers: {said(failed)}, so strong and weak ciphers alike look like chance. "
            f"Re-run with {_suggestion(results)}."
        )
    elif rows:
        headline = f"The victim is strong enough to compare ciphers: {said(rows)}."
    else:
        headline = "No re-ID or attribute figure was measured, so this run cannot compare ciphers."
    return {"ok": bool(rows) and not failed, "checks": rows, "headline": headline}
