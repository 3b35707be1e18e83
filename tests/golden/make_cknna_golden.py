"""Golden CKNNA values from platonic-rep's own ``metrics.py`` (run from a checkout; nothing copied).

    git --git-dir=/work/.mirror/minyoungg+platonic-rep/repo worktree add /tmp/platonic-rep HEAD
    python tests/golden/make_cknna_golden.py /tmp/platonic-rep

Writes tests/golden/cknna_platonic_rep.npz: seeded inputs (two correlated embeddings and an
independent one), fixed permutations, and ``AlignmentMetrics.cknna`` (its defaults:
unbiased=True, distance_agnostic=False) on unit-normalised float64 rows (platonic-rep's
``compute_score`` normalises before measuring) for each k, plain and with side B permuted.
"""
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).with_name("cknna_platonic_rep.npz")
KS = (2, 5, 10, 25)


def load_metrics(checkout: Path):
    # metrics.py imports torchaudio for its edit-distance metric only; CKNNA does not use it.
    audio = types.ModuleType("torchaudio")
    audio.functional = types.ModuleType("torchaudio.functional")
    sys.modules.setdefault("torchaudio", audio)
    sys.modules.setdefault("torchaudio.functional", audio.functional)
    sys.path.insert(0, str(checkout))
    import metrics  # noqa: E402  (platonic-rep's module)

    return metrics.AlignmentMetrics


def main(checkout: str) -> None:
    checkout = Path(checkout)
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cknna = load_metrics(checkout).cknna
    rng = np.random.default_rng(2024)
    n = 160
    latent = rng.standard_normal((n, 4))
    za = latent @ rng.standard_normal((4, 16)) + 0.6 * rng.standard_normal((n, 16))
    zb = latent @ rng.standard_normal((4, 24)) + 0.6 * rng.standard_normal((n, 24))
    zc = rng.standard_normal((n, 12)) ** 3  # independent of both
    perms = np.stack([rng.permutation(n) for _ in range(3)])

    def unit(z):
        t = torch.as_tensor(z, dtype=torch.float64)
        return torch.nn.functional.normalize(t, p=2, dim=-1)

    out = {"za": za, "zb": zb, "zc": zc, "perms": perms, "ks": np.array(KS)}
    for k in KS:
        out[f"ab_k{k}"] = np.array(cknna(unit(za), unit(zb), topk=k))
        out[f"ac_k{k}"] = np.array(cknna(unit(za), unit(zc), topk=k))
        out[f"aa_k{k}"] = np.array(cknna(unit(za), unit(za), topk=k))
        out[f"ab_perm_k{k}"] = np.array([cknna(unit(za), unit(zb[p]), topk=k) for p in perms])
    np.savez_compressed(OUT, commit=np.array(commit), **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) from platonic-rep {commit}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
