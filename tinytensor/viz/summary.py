"""An array as the page shows it: every value when small, else statistics and a small heatmap."""
import numpy as np

FULL = 64          # arrays with at most this many elements are sent in full
HEAT = 16          # a larger array's heatmap has at most HEAT x HEAT cells (block means)


def summarize(array):
    """{"shape", "dtype", "values"} for a small array; {"shape", "dtype", "stats", "heat"} for a larger one."""
    if array is None:
        return None
    a = np.asarray(array)
    out = {"shape": list(a.shape), "dtype": str(a.dtype)}
    f = a.astype(np.float64).reshape(-1)
    if f.size <= FULL:
        out["values"] = f.tolist()
        return out
    finite = f[np.isfinite(f)]
    out["stats"] = {"min": float(finite.min()) if finite.size else float("nan"),
                    "max": float(finite.max()) if finite.size else float("nan"),
                    "mean": float(finite.mean()) if finite.size else float("nan"),
                    "std": float(finite.std()) if finite.size else float("nan"),
                    "norm": float(np.sqrt((finite * finite).sum())),
                    "nonfinite": int(f.size - finite.size)}
    out["heat"] = [[float(f"{v:.3g}") for v in row] for row in heatmap(a.astype(np.float64))]
    return out


def heatmap(a, cells=HEAT):
    """A 2-D array of at most ``cells`` x ``cells`` block means: the last axis across, the rest down."""
    m = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(1, -1)
    rows, cols = m.shape
    out = np.empty((min(rows, cells), min(cols, cells)))
    r_edges = np.linspace(0, rows, out.shape[0] + 1).astype(int)
    c_edges = np.linspace(0, cols, out.shape[1] + 1).astype(int)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = m[r_edges[i]:r_edges[i + 1], c_edges[j]:c_edges[j + 1]]
            block = block[np.isfinite(block)]
            out[i, j] = block.mean() if block.size else np.nan
    return out
