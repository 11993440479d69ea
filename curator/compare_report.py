"""The readable report of ``curator compare`` (the JSON is the contract; this is for people)."""

from __future__ import annotations

from .compare import SHIFT_RULE, Comparison
from .leaks import labels_differ

MAX_LEAK_LINES = 15
MAX_OUTSIDE_LINES = 10


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1%}"


def report_lines(c: Comparison) -> list[str]:
    a, b = c.a, c.b
    out = [f"compare {b.name} ({b.items:,} images) against {a.name} ({a.items:,} images) · embedding {a.embedding}", ""]

    s = c.leak_summary()
    out.append(f"LEAKS  {s['b_items']:,} of {b.name}'s images ({_pct(s['share_of_b'])}) are copies of {a.name} images: "
               f"{s['exact_pairs']:,} exact and {s['near_pairs']:,} near-duplicate pairs")
    if s["labels_differ"]:
        n = s["labels_differ"]
        out.append(f"  WORST CASE: {n:,} leaked {'pair carries' if n == 1 else 'pairs carry'} DIFFERENT labels (listed first): "
                   "the same picture is labelled two ways, so one of the labels is wrong")
    differ = labels_differ(c.leaks) if len(c.leaks) else []
    for i, row in enumerate(c.leaks.head(MAX_LEAK_LINES).itertuples(index=False)):
        flag = "  !! labels differ" if differ[i] else ""
        out.append(f"  {row.kind:<15} {row.score:.3f}  {row.path_b} [{row.label_b}]  <->  {row.path_a} [{row.label_a}]{flag}")
    if len(c.leaks) > MAX_LEAK_LINES:
        out.append(f"  … {len(c.leaks) - MAX_LEAK_LINES:,} more pairs: write them all with -o leaks.csv")
    out.append("")

    p = c.prdc
    out.append(f"COVERAGE (PRDC, k={p['k']}, {b.name} against {a.name})")
    if p["precision"] is None:
        out.append("  not enough images for PRDC (each split needs more than k readable images)")
    else:
        out.append(f"  precision {p['precision']:.3f}  share of {b.name} inside {a.name}'s k-NN balls (low: {b.name} shows things {a.name} lacks)")
        out.append(f"  recall    {p['recall']:.3f}  share of {a.name} inside {b.name}'s balls (low: {b.name} spans less than {a.name})")
        out.append(f"  density   {p['density']:.3f}  ≈ 1 when {b.name} is distributed like {a.name}")
        out.append(f"  coverage  {p['coverage']:.3f}  share of {a.name}'s balls holding a {b.name} image")
    out.append("")

    t = c.class_test
    test = "" if t["statistic"] is None else f" · chi-square {t['statistic']:.1f}, dof {t['dof']}, p = {t['p_value']:.3g}"
    out.append(f"CLASSES  {len(c.class_shift)} labels{test}")
    if t["only_in_a"]:
        out.append(f"  only in {a.name}: {', '.join(t['only_in_a'])}")
    if t["only_in_b"]:
        out.append(f"  only in {b.name}: {', '.join(t['only_in_b'])}")
    moved = sorted(c.class_shift, key=lambda r: -abs(r["share_b"] - r["share_a"]))[:8]
    if moved:
        width = max(len(str(r["label"])) for r in moved)
        out.append(f"  {'label':<{width}}  {'share ' + a.name[:10]:>18}  {'share ' + b.name[:10]:>18}  (largest moves)")
        for r in moved:
            out.append(f"  {r['label']:<{width}}  {r['share_a']:>17.1%}  {r['share_b']:>17.1%}   ({r['count_a']:,} / {r['count_b']:,})")
    out.append("")

    out.append(f"DRIFT  two-sample Kolmogorov-Smirnov per metric; shifted = {SHIFT_RULE}")
    for r in c.drift:
        mark = "SHIFTED" if r["shifted"] else ""
        out.append(f"  {r['metric']:<13} KS {r['statistic']:.3f}  p {r['p_value']:.2g}  median {r['median_a']:.4g} -> {r['median_b']:.4g}  {mark}")
    out.append("")

    out.append(f"OUTSIDE SUPPORT  {b.name} images least like anything in {a.name} "
               "(distance to the nearest A image / that image's k-NN radius; > 1 = outside)")
    for row in c.outside.head(MAX_OUTSIDE_LINES).itertuples(index=False):
        out.append(f"  {row.score:7.2f}  {row.path} [{row.label}]")
    return out
