"""Expected MSE of strategy="auto" relative to the better of pure shadow and parameter-shift.

Numbers from the user guide's table (``python benchmarks/hybrid_allocation.py``). Below 1:
auto beats both; 1/0.95 = 1.053 is the price of its 5% pilot.
"""

import matplotlib.pyplot as plt

rows = [  # (label, auto / min(pure, param-shift))
    ("ring n=2 M=100", 1.053),
    ("ring n=3 M=96", 1.052),
    ("ring n=4 M=24", 0.597),
    ("ring n=4 M=96", 1.044),
    ("wide n=6 M=12", 0.440),
    ("wide n=6 M=24", 0.121),
    ("wide n=8 M=16", 0.172),
    ("wide n=8 M=32", 0.782),
    ("wide n=8 M=48", 0.238),
    ("wide n=10 M=20", 0.375),
    ("wide n=10 M=40", 0.200),
    ("wide n=10 M=60", 0.810),
    ("TFIM n=4 M=48", 1.052),
    ("TFIM n=5 M=60", 1.052),
    ("TFIM n=6 M=24", 0.473),
]
labels, ratios = zip(*rows)
colours = [
    "C0" if lab.startswith("ring") else "C3" if lab.startswith("wide") else "C4" for lab in labels
]
fig, ax = plt.subplots(figsize=(7.0, 4.4))
ax.barh(range(len(rows)), ratios, color=colours)
ax.axvline(1.0, color="k", lw=0.8)
ax.axvline(1 / 0.95, color="k", lw=0.8, ls=":")
ax.text(1 / 0.95 + 0.01, 7, "pilot\ncost\n1/0.95", fontsize=8, va="center")
ax.set_xlim(0, 1.2)
ax.set_yticks(range(len(rows)), labels, fontsize=8)
ax.invert_yaxis()
ax.set_xlabel("MSE auto / min(MSE pure shadow, MSE parameter-shift)")
ax.set_title('strategy="auto" at equal budgets (exact expected MSE)')
fig.tight_layout()
