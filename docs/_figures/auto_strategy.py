"""Exact expected MSE of the default strategy relative to the better of pure shadow and
parameter-shift, and how it split the shots (numbers from the user guide's table,
``python benchmarks/hybrid_allocation.py``). Below 1: the default beats both.
"""

import matplotlib.pyplot as plt

# (family, n, M, default / min, shadow shots, parameter-shift shots)
rows = [
    ("a", 2, 24, 1.000, 4790, 10),
    ("a", 2, 100, 1.000, 20000, 0),
    ("a", 3, 24, 0.940, 4216, 584),
    ("a", 3, 96, 1.000, 19200, 0),
    ("a", 4, 24, 0.549, 1408, 3392),
    ("a", 4, 96, 0.992, 18800, 400),
    ("b", 6, 12, 0.368, 0, 800),
    ("b", 6, 24, 0.112, 732, 1668),
    ("b", 6, 36, 0.488, 2454, 2346),
    ("c", 4, 48, 1.000, 28800, 0),
    ("c", 5, 60, 1.000, 36000, 0),
    ("c", 6, 24, 0.434, 3316, 11084),
    ("d", 2, 24, 1.000, 9600, 0),
    ("d", 3, 24, 0.385, 0, 4800),
    ("d", 4, 24, 0.942, 12468, 1932),
    ("d", 4, 48, 0.373, 0, 9600),
    ("d", 5, 20, 0.392, 4732, 7268),
    ("d", 3, 48, 0.906, 6380, 3220),
]
names = {"a": "ring", "b": "brickwork", "c": "TFIM", "d": "Clifford angles"}
colours = {"a": "C0", "b": "C3", "c": "C4", "d": "C2"}
labels = [f"{f} {names[f]} n={n} M={m}" for f, n, m, *_ in rows]
y = range(len(rows))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 5.2), sharey=True)
ax1.barh(y, [r[3] for r in rows], color=[colours[r[0]] for r in rows])
ax1.axvline(1.0, color="k", lw=0.8)
ax1.axvline(1.1, color="k", lw=0.8, ls=":")
ax1.text(1.11, len(rows) / 2, "target\n1.1", fontsize=8, va="center")
ax1.set_yticks(list(y), labels, fontsize=8)
ax1.invert_yaxis()
ax1.set_xlim(0, 1.3)
ax1.set_xlabel("MSE default / min(MSE pure shadow, MSE parameter-shift)")
shadow = [r[4] / (r[4] + r[5]) for r in rows]
ax2.barh(y, shadow, color="C1", label="snapshots")
ax2.barh(y, [1 - s for s in shadow], left=shadow, color="C7", label="parameter-shift")
ax2.set_xlim(0, 1)
ax2.set_xlabel("fraction of the budget T")
ax2.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
fig.suptitle('The default strategy="auto" at equal budgets (exact expected MSE)')
fig.tight_layout()
