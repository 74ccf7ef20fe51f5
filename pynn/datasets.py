"""A built-in, generated data set, so the demo and examples need no download."""
from __future__ import annotations

import numpy as np

__all__ = ["make_cluster_classification"]


def make_cluster_classification(n_samples=30000, n_features=64, n_classes=10,
                                n_clusters_per_class=4, class_sep=0.7, random_state=0,
                                dtype="float32"):
    """Classes made of several Gaussian clusters each: non-linear, learnable.

    ``n_classes * n_clusters_per_class`` cluster centres are drawn from
    ``N(0, class_sep^2)`` in every feature; each row picks a cluster uniformly,
    adds unit Gaussian noise, and takes the label of its cluster's class.  A
    class is a union of clusters scattered among the others' clusters, so a
    linear model does poorly while an MLP reaches high accuracy.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), ints in [0, n_classes)
    """
    if n_samples < 1 or n_features < 1 or n_classes < 2 or n_clusters_per_class < 1:
        raise ValueError("need n_samples >= 1, n_features >= 1, n_classes >= 2 and "
                         "n_clusters_per_class >= 1")
    if not class_sep > 0:
        raise ValueError(f"class_sep must be > 0, got {class_sep!r}")
    rng = np.random.default_rng(random_state)
    centers = rng.normal(0.0, class_sep, (n_classes * n_clusters_per_class, n_features))
    cluster = rng.integers(0, len(centers), n_samples)
    X = centers[cluster] + rng.standard_normal((n_samples, n_features))
    return X.astype(dtype), cluster % n_classes
