"""The measured regime map of the pure shadow gradient (numbers from the user guide's table).

Gradient MSE ratio parameter-shift / shadow at equal Tracker-counted shots, with 95% bootstrap
confidence intervals (``python benchmarks/shadow_vs_shift.py``). Above 1: shadow wins.
"""

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

# (M, ratio, low, high) per family and n, copied from docs/guide/regime_map.md
ring = {
    2: [(24, 8.96, 7.00, 11.71), (200, 56.3, 48.1, 67.0)],
    3: [
        (24, 3.03, 2.43, 3.85),
        (96, 9.98, 8.28, 12.08),
        (204, 21.7, 19.5, 24.3),
        (402, 50.8, 45.4, 57.9),
    ],
    4: [(24, 1.12, 0.90, 1.38), (200, 8.42, 7.55, 9.37), (400, 17.7, 16.0, 19.4)],
}
wide = [(6, 12, 0.95, 0.47, 2.10), (8, 32, 0.77, 0.41, 1.96), (10, 60, 0.60, 0.40, 0.94)]
tfim = [(4, 96, 15.4, 13.9, 17.0), (5, 60, 4.00, 3.56, 4.50), (6, 24, 0.95, 0.76, 1.16)]

fig, ax = plt.subplots(figsize=(7.0, 4.4))
for (n, rows), colour in zip(ring.items(), ("C0", "C1", "C2")):
    m, r, lo, hi = zip(*rows)
    err = [[a - b for a, b in zip(r, lo)], [b - a for a, b in zip(r, hi)]]
    ax.errorbar(
        m, r, yerr=err, marker="o", capsize=3, color=colour, label=f"deep ring, Z(0), n={n}"
    )
for n, m, r, lo, hi in wide:
    ax.errorbar(
        [m],
        [r],
        yerr=[[r - lo], [hi - r]],
        marker="s",
        capsize=3,
        color="C3",
        label="wide brickwork, Z(n/2)" if n == 6 else None,
    )
    ax.annotate(f"n={n}", (m, r), textcoords="offset points", xytext=(6, -10), fontsize=8)
for n, m, r, lo, hi in tfim:
    ax.errorbar(
        [m],
        [r],
        yerr=[[r - lo], [hi - r]],
        marker="^",
        capsize=3,
        color="C4",
        label="TFIM ring ansatz" if n == 4 else None,
    )
    ax.annotate(f"n={n}", (m, r), textcoords="offset points", xytext=(6, 2), fontsize=8)
ax.axhline(1.0, color="k", lw=0.8, ls="--")
ax.text(420, 1.08, "shadow wins above the line", fontsize=8, ha="right")
ax.set_xscale("log")
ax.set_yscale("log")
ticks = [12, 24, 50, 100, 200, 400]
ax.xaxis.set_minor_formatter(NullFormatter())
ax.set_xticks(ticks, [str(t) for t in ticks])
ax.set_yticks([0.5, 1, 2, 5, 10, 20, 50], ["0.5", "1", "2", "5", "10", "20", "50"])
ax.yaxis.set_minor_formatter(NullFormatter())
ax.set_xlabel("trainable parameters M")
ax.set_ylabel("MSE parameter-shift / MSE shadow")
ax.set_title("Pure shadow against parameter-shift at equal gradient shots")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
