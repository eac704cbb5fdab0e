"""Linear L2-SVM probe of frozen features (DCGAN paper, sections 5.1 and 5.2).

Protocol, for every draw ``d`` (seeded with ``seed + d``): sample ``labels_per_class``
labelled training images per class and a disjoint random validation set of ``val_size``
other training images; for every feature function (all on the same draws) standardise the
features with statistics of the labelled subset only, train a ``LinearSVC`` (L2 penalty,
squared hinge) for every C in the grid, choose C by validation accuracy (ties go to the
smaller C, i.e. the stronger regularisation) and report test accuracy at that C. Results
are mean +- 1.96 sigma over draws, sigma being the population (ddof=0) standard
deviation of the per-draw test accuracies.

The SVM is the same problem LinearSVC solves (one-vs-rest, L2 penalty, squared hinge,
liblinear's regularised bias via a constant feature of 1), and by default it is solved
exactly and fast (``solver="newton"``): by the representer theorem each class's weight
vector lies in the span of the labelled rows, so every vector is first projected onto an
orthonormal basis of that span (<= 1,000 coordinates instead of thousands of features,
decision values unchanged), where a finite Newton method for the L2-loss SVM (Keerthi and
DeCoste, 2005: Newton steps on the active set, exact line search, warm-started along the
ascending C grid) reaches the optimum to ~1e-10. ``solver="liblinear"`` runs scikit-learn's
LinearSVC on the full features instead (same optimum up to its tolerance; tests check
that the two agree); on Fashion-MNIST with 6,400 K-means features it took ~240 s per
draw where the Newton solver takes seconds.

Features are computed once per image: once for the test set and once for the union of all
training images used by any draw, per method, then indexed per draw. Peak memory is that
cache of one method (float32) at a time. The SVM fits dominate the run time: on
Fashion-MNIST (1,000 labels, 10,000 validation and test images) one draw's default C grid
took ~60 CPU-seconds with 1,600 K-means features and ~15 with 784 raw pixels;
``n_jobs`` spreads the grid over processes.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections import Counter
from typing import Callable, Mapping, Sequence

import joblib
import numpy as np
import scipy.linalg
import threadpoolctl
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

FeatureFn = Callable[[np.ndarray], np.ndarray]
# Standardised features with thousands of dims want strong regularisation; C >= 0.3 was
# never chosen on Fashion-MNIST (raw pixels or K-means) and is the slowest to fit.
SOLVERS = ("newton", "liblinear")
# "standard": StandardScaler fit on the labelled subset (the default); "none": features as
# they come (on Fashion-MNIST, D's features probe ~2 points better unscaled: standardising
# amplifies its many near-constant dims).
SCALINGS = ("standard", "none")
DEFAULT_C_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def raw_pixels(images: np.ndarray) -> np.ndarray:
    """The trivial feature function: each image flattened to a float32 vector."""
    images = np.asarray(images)
    return images.reshape(images.shape[0], -1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Draw:
    """One random draw: ``labelled`` and ``validation`` index the training set."""

    seed: int
    labelled: np.ndarray
    validation: np.ndarray


@dataclasses.dataclass
class MethodResult:
    """Per-draw outcomes of one feature function (lists are ordered like the draws)."""

    name: str
    feature_dim: int
    test_accuracies: list[float]
    chosen_c: list[float]
    val_accuracies: list[float]      # validation accuracy at the chosen C
    val_accuracy_grid: list[list[float]]  # [draw][c index]
    converged: list[bool]             # whether LinearSVC converged at the chosen C
    feature_seconds: float = 0.0
    svm_seconds: float = 0.0
    extra: dict = dataclasses.field(default_factory=dict)  # method-specific JSON entries

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean(self.test_accuracies))

    @property
    def ci95(self) -> float:
        """1.96 times the (ddof=0) standard deviation over draws, as in the paper."""
        return float(1.96 * np.std(self.test_accuracies))

    @property
    def error_rate(self) -> float:
        return 1.0 - self.mean_accuracy


@dataclasses.dataclass
class ProbeResult:
    """What ``run_probe`` returns: per-method results (ordered), draws and config."""

    methods: dict[str, MethodResult]
    draws: list[Draw]
    config: dict


def sample_draw(train_labels: np.ndarray, labels_per_class: int, val_size: int,
                seed: int) -> Draw:
    """Samples a class-balanced labelled subset and a disjoint validation set.

    Args:
      train_labels: int labels [n] of the training pool.
      labels_per_class: labelled images drawn per class, without replacement.
      val_size: validation images drawn uniformly from the remaining pool.
      seed: seed of this draw (``numpy.random.default_rng``).

    Returns:
      A ``Draw`` whose index arrays are sorted.
    """
    rng = np.random.default_rng(seed)
    labelled = np.concatenate([
        rng.choice(np.flatnonzero(train_labels == c), labels_per_class, replace=False)
        for c in np.unique(train_labels)])
    rest = np.setdiff1d(np.arange(len(train_labels)), labelled)
    validation = rng.choice(rest, val_size, replace=False)
    return Draw(seed, np.sort(labelled), np.sort(validation))


def _validate(feature_fns, train_images, train_labels, test_images, test_labels,
              labels_per_class, val_size, draws, c_grid, batch_size):
    if not isinstance(feature_fns, Mapping) or not feature_fns:
        raise ValueError("feature_fns must be a non-empty mapping name -> callable")
    for name, fn in feature_fns.items():
        if not callable(fn):
            raise TypeError(f"feature function {name!r} is not callable")
    for what, images, labels in [("train", train_images, train_labels),
                                 ("test", test_images, test_labels)]:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{what}_labels must be a 1-D integer array, got "
                             f"{labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{what}_images has {len(images)} images but {what}_labels "
                             f"has {len(labels)} labels")
        if len(images) == 0:
            raise ValueError(f"{what} set is empty")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"train images {train_images.shape[1:]} and test images "
                         f"{test_images.shape[1:]} have different shapes")
    classes, counts = np.unique(train_labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError("the training set needs at least 2 classes")
    unknown = np.setdiff1d(test_labels, classes)
    if unknown.size:
        raise ValueError(f"test labels {unknown.tolist()} do not occur in the training set")
    if labels_per_class < 1 or labels_per_class > counts.min():
        raise ValueError(f"labels_per_class={labels_per_class} must be in [1, "
                         f"{counts.min()}] (smallest class: {classes[counts.argmin()]})")
    pool = len(train_labels) - labels_per_class * len(classes)
    if val_size < 1 or val_size > pool:
        raise ValueError(f"val_size={val_size} must be in [1, {pool}]: the training set "
                         f"has {len(train_labels)} images of which "
                         f"{labels_per_class * len(classes)} are labelled")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if len(c_grid) == 0 or min(c_grid) <= 0:
        raise ValueError(f"c_grid must be non-empty and positive, got {c_grid}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def compute_features(fn: FeatureFn, images: np.ndarray, batch_size: int,
                     name: str = "feature function", indices=None) -> np.ndarray:
    """Applies ``fn`` in batches to ``images`` (or ``images[indices]``, gathered per batch
    so the selection is never copied whole); returns float32 [n, dims], checked finite."""
    n = len(images) if indices is None else len(indices)
    parts = []
    for start in range(0, n, batch_size):
        sel = slice(start, start + batch_size)
        chunk = images[sel] if indices is None else images[indices[sel]]
        feats = np.asarray(fn(chunk))
        if feats.ndim < 1 or feats.shape[0] != len(chunk):
            raise ValueError(f"{name} returned shape {feats.shape} for {len(chunk)} images")
        parts.append(feats.reshape(len(chunk), -1).astype(np.float32, copy=False))
    out = np.concatenate(parts)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} returned NaN or inf features")
    return out


def _fit_svm(x, y, c, seed, max_iter, dual):
    svm = LinearSVC(C=c, penalty="l2", loss="squared_hinge", dual=dual, max_iter=max_iter,
                    random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(x, y)
    return svm, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def span_basis(x: np.ndarray) -> np.ndarray:
    """Orthonormal basis [d, r] of the span of the rows of ``x`` [n, d] (float64, r <= n)."""
    _, s, vt = np.linalg.svd(np.asarray(x, np.float64), full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise ValueError("the labelled features are all zero: nothing to train on")
    return vt[s > s[0] * max(x.shape) * np.finfo(np.float64).eps].T


def _exact_line_search(w, d, margin_o, margin_d, c, max_iter=100):
    """argmin over t >= 0 of 0.5||w + t d||^2 + c sum max(0, 1 - (m_o + t m_d))^2.

    ``margin_o`` = y * (X w), ``margin_d`` = y * (X d). The derivative in t is monotone and
    piecewise linear, so a Newton step from inside a bracket lands on the root as soon as
    it is taken on the root's linear piece; bisection keeps it inside the bracket."""
    wd, dd = float(w @ d), float(d @ d)

    def derivative(t):
        active = margin_o + t * margin_d < 1
        md = margin_d[active]
        slope = wd + t * dd - 2 * c * float(md @ (1 - margin_o[active] - t * md))
        return slope, dd + 2 * c * float(md @ md)

    lo, hi, t = 0.0, None, 1.0
    for _ in range(max_iter):
        g, h = derivative(t)
        if abs(g) <= 1e-12 * (1 + abs(wd) + dd):
            return t
        if g < 0:
            lo = t
        else:
            hi = t
        step = t - g / h
        if hi is None:
            t = max(step, 2 * t)
        elif lo < step < hi:
            t = step
        else:
            t = 0.5 * (lo + hi)
    return t


def l2svm_newton(z: np.ndarray, y: np.ndarray, c: float, w0: np.ndarray | None = None,
                 gram: np.ndarray | None = None, tol: float = 1e-10, max_iter: int = 100):
    """Minimises 0.5||w||^2 + c * sum_i max(0, 1 - y_i w.z_i)^2 exactly (binary, y = +-1).

    The finite Newton method of Keerthi and DeCoste (2005): solve the regularised least
    squares problem on the active set (margins < 1), exact line search, repeat; it stops
    when the gradient vanishes (relative ``tol``). ``gram`` = z^T z may be passed to reuse
    it across calls. Returns ``(w, converged)``.
    """
    n, r = z.shape
    gram = z.T @ z if gram is None else gram
    w = np.zeros(r) if w0 is None else np.array(w0, np.float64)
    scale = 1 + 2 * c * float(np.linalg.norm(z.T @ y))
    for _ in range(max_iter):
        out = z @ w
        active = y * out < 1
        resid = out[active] - y[active]
        grad = w + 2 * c * (z[active].T @ resid)
        if np.linalg.norm(grad) <= tol * scale:
            return w, True
        if active.sum() * 2 > n:  # cheaper to remove the inactive rows from the Gram matrix
            inactive = z[~active]
            hess = gram - inactive.T @ inactive
        else:
            za = z[active]
            hess = za.T @ za
        hess *= 2 * c
        hess[np.diag_indices(r)] += 1.0
        target = scipy.linalg.solve(hess, 2 * c * (z[active].T @ y[active]), assume_a="pos",
                                    overwrite_a=True, check_finite=False)  # Cholesky
        d = target - w
        t = _exact_line_search(w, d, y * out, y * (z @ d), c)
        w = w + t * d
    return w, False


def _newton_fit_draw(x_lab, y_lab, x_val, y_val, x_test, y_test, c_grid):
    """The probe on one draw with the exact span + Newton solver (see the module doc)."""
    def with_bias(x):
        return np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1)

    x_lab, x_val, x_test = (with_bias(x) for x in (x_lab, x_val, x_test))
    basis = span_basis(x_lab)
    z = x_lab.astype(np.float64) @ basis
    z_val, z_test = ((x @ basis.astype(np.float32)).astype(np.float64)
                     for x in (x_val, x_test))
    classes = np.unique(y_lab)
    signs = np.where(y_lab[:, None] == classes[None, :], 1.0, -1.0)  # one-vs-rest
    gram = z.T @ z
    weights = np.zeros((z.shape[1], len(classes)))
    grid, fits = [], []
    for c in c_grid:  # ascending: each C starts from the previous C's solution
        converged = True
        for k in range(len(classes)):
            weights[:, k], ok = l2svm_newton(z, signs[:, k], c, weights[:, k], gram)
            converged &= ok
        grid.append(float(np.mean(classes[np.argmax(z_val @ weights, 1)] == y_val)))
        fits.append((weights.copy(), converged))
    best = int(np.argmax(grid))  # first maximum: ties go to the smaller C
    w, converged = fits[best]
    test_acc = float(np.mean(classes[np.argmax(z_test @ w, 1)] == y_test))
    return c_grid[best], grid[best], grid, test_acc, converged


def _fit_draw(x_lab, y_lab, x_val, y_val, x_test, y_test, c_grid, seed, max_iter, dual,
              n_jobs, solver="newton", scaling="standard"):
    if scaling == "standard":
        scaler = StandardScaler().fit(x_lab)  # labelled subset only: no peeking at val/test
        x_lab, x_val, x_test = (scaler.transform(x) for x in (x_lab, x_val, x_test))
    if solver == "newton":
        # Many small factorisations: one BLAS thread is faster, and far faster when the
        # cores are shared (measured 2-8x: OpenBLAS's threads spin against each other).
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            return _newton_fit_draw(x_lab, y_lab, x_val, y_val, x_test, y_test, c_grid)
    if dual is None:
        # liblinear's dual coordinate descent is much faster than the primal Newton solver
        # unless samples far outnumber features (measured: 1,000 x 784 at C=1, 9 s vs
        # 175 s), and the probe's usual regime is 1,000 labels vs thousands of dims.
        dual = x_lab.shape[0] <= 5 * x_lab.shape[1]
    # Processes, not threads: liblinear's random generator is global, so concurrent
    # fits in one process would make results depend on scheduling.
    fits = joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(_fit_svm)(x_lab, y_lab, c, seed, max_iter, dual) for c in c_grid)
    grid = [float(np.mean(svm.predict(x_val) == y_val)) for svm, _ in fits]
    best = int(np.argmax(grid))  # first maximum: ties go to the smaller C
    svm, converged = fits[best]
    test_acc = float(np.mean(svm.predict(x_test) == y_test))
    return c_grid[best], grid[best], grid, test_acc, converged


def run_probe(feature_fns: Mapping[str, FeatureFn], train_images, train_labels,
              test_images, test_labels, labels_per_class: int = 100, val_size: int = 10000,
              draws: int = 10, c_grid: Sequence[float] = DEFAULT_C_GRID, seed: int = 0,
              batch_size: int = 500, max_iter: int = 10000, dual: bool | None = None,
              n_jobs: int = 1, progress: bool = True, solver: str = "newton",
              scaling: str = "standard") -> ProbeResult:
    """Runs the linear-SVM probe for every feature function on the same random draws.

    Args:
      feature_fns: ordered mapping name -> callable(images [b, ...]) -> features [b, ...].
      train_images, train_labels: the pool that labelled and validation sets come from.
      test_images, test_labels: evaluation set (same image shape as the training set).
      labels_per_class: labelled images per class (100 -> the paper's 1000-label SVHN).
      val_size: held-out validation images used only to choose C (10,000 in the paper).
      draws: number of random draws; draw d uses seed ``seed + d``.
      c_grid: candidate SVM regularisation constants C.
      seed: base seed.
      batch_size: images per call to a feature function.
      max_iter: LinearSVC iteration limit (non-convergence is recorded, not fatal).
      dual: LinearSVC formulation; None picks the dual unless the labelled samples
        outnumber the feature dims more than 5 to 1.
      n_jobs: worker processes fitting the C grid in parallel (joblib); results do not
        depend on it.
      progress: print one line per method and draw to stderr.
      solver: "newton" (exact, in the span of the labelled rows; the default) or
        "liblinear" (scikit-learn's LinearSVC on the full features; ``max_iter``,
        ``dual`` and ``n_jobs`` apply to it only).
      scaling: "standard" (StandardScaler fit on each draw's labelled subset) or "none".

    Returns:
      A ``ProbeResult``.

    Raises:
      ValueError, TypeError: on inconsistent inputs (see messages).
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    train_images, test_images = np.asarray(train_images), np.asarray(test_images)
    c_grid = tuple(sorted({float(c) for c in c_grid}))  # ascending: ties pick smaller C
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    _validate(feature_fns, train_images, train_labels, test_images, test_labels,
              labels_per_class, val_size, draws, c_grid, batch_size)
    # Draws are sampled once, up front, so every method sees exactly the same splits.
    all_draws = [sample_draw(train_labels, labels_per_class, val_size, seed + d)
                 for d in range(draws)]
    needed = np.unique(np.concatenate([np.r_[d.labelled, d.validation] for d in all_draws]))

    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    methods = {}
    for name, fn in feature_fns.items():
        t0 = time.perf_counter()
        pool = compute_features(fn, train_images, batch_size, repr(name), indices=needed)
        test = compute_features(fn, test_images, batch_size, repr(name))
        if pool.shape[1] != test.shape[1]:
            raise ValueError(f"{name!r} gave {pool.shape[1]} train but {test.shape[1]} "
                             "test features")
        res = MethodResult(name, int(pool.shape[1]), [], [], [], [], [],
                           feature_seconds=time.perf_counter() - t0)
        log(f"[svm_probe] {name}: {res.feature_dim} features in {res.feature_seconds:.1f}s")
        t0 = time.perf_counter()
        for d, draw in enumerate(all_draws):
            lab = np.searchsorted(needed, draw.labelled)  # rows of the feature cache
            val = np.searchsorted(needed, draw.validation)
            c, val_acc, grid, test_acc, conv = _fit_draw(
                pool[lab], train_labels[draw.labelled], pool[val],
                train_labels[draw.validation], test, test_labels, c_grid, draw.seed, max_iter,
                dual, n_jobs, solver, scaling)
            for field, value in [("chosen_c", c), ("val_accuracies", val_acc),
                                 ("val_accuracy_grid", grid), ("test_accuracies", test_acc),
                                 ("converged", conv)]:
                getattr(res, field).append(value)
            log(f"[svm_probe] {name} draw {d + 1}/{draws}: C={c:g} val={val_acc:.4f} "
                f"test={test_acc:.4f}")
        res.svm_seconds = time.perf_counter() - t0
        methods[name] = res
        del pool, test  # free this method's cache before the next one
    config = dict(labels_per_class=labels_per_class, val_size=val_size, draws=draws,
                  c_grid=list(c_grid), seed=seed, solver=solver, scaling=scaling,
                  **({"max_iter": max_iter, "dual": dual} if solver == "liblinear" else {}),
                  num_train=int(len(train_labels)), num_test=int(len(test_labels)),
                  num_classes=int(len(np.unique(train_labels))))
    return ProbeResult(methods, all_draws, config)


def _most_common_c(chosen: list[float]) -> str:
    if not chosen:  # a method without an SVM (the supervised CNN)
        return "-"
    c, count = Counter(chosen).most_common(1)[0]
    return f"{c:g} ({count}/{len(chosen)})"


def format_table(result: ProbeResult) -> str:
    """A fixed-width text table: accuracy, +-1.96 sigma, error, dims, most common C."""
    cfg = result.config
    header = ["method", "accuracy %", "+-1.96sd %", "error %", "dims", "C (mode)"]
    rows = [[m.name, f"{100 * m.mean_accuracy:.2f}", f"{100 * m.ci95:.2f}",
             f"{100 * m.error_rate:.2f}", str(m.feature_dim), _most_common_c(m.chosen_c)]
            for m in result.methods.values()]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(row):  # method name left-aligned, numbers right-aligned
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w)
                         for i, (s, w) in enumerate(zip(row, widths)))

    title = (f"Linear SVM probe ({cfg.get('scaling', 'standard')} features): "
             f"{cfg['labels_per_class']} labels/class x "
             f"{cfg['num_classes']} classes, {cfg['val_size']} validation, "
             f"{cfg['draws']} draws, {cfg['num_test']} test images")
    lines = [title, fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def result_to_json(result: ProbeResult, include_indices: bool = False) -> dict:
    """A JSON-serialisable dict of the result (draw indices only if asked: they are big)."""
    methods = {name: dict(
        test_accuracies=m.test_accuracies, chosen_c=m.chosen_c,
        val_accuracies=m.val_accuracies, val_accuracy_grid=m.val_accuracy_grid,
        converged=m.converged, mean_accuracy=m.mean_accuracy, ci95=m.ci95,
        error_rate=m.error_rate, feature_dim=m.feature_dim,
        feature_seconds=m.feature_seconds, svm_seconds=m.svm_seconds, **m.extra)
        for name, m in result.methods.items()}
    draws = [dict(seed=d.seed, **({"labelled": d.labelled.tolist(),
                                   "validation": d.validation.tolist()}
                                  if include_indices else {})) for d in result.draws]
    return dict(config=dict(result.config), methods=methods, draws=draws)
