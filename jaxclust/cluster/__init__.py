"""Clustering: k-means (greedy k-means++, Lloyd, restarts by vmap, envelope gradients),
mini-batch k-means, differentiable relaxations (soft and Sinkhorn k-means) and clustering
losses, k-medoids (FasterPAM, PAM, BUILD), Gaussian mixtures (EM), the semi-supervised
mixture with split / merge of GPC (category discovery), spectral clustering and
Laplacian-regularised k-means, and the losses of deep clustering heads (DEC/DEPICT targets,
P²OT pseudo-label cross-entropy, TELL's k-means layer, SimCLR's NT-Xent).

``import jaxclust.cluster`` loads none of its modules: each public name is imported from its
module on first access (PEP 562 module ``__getattr__``, as ``jaxclust`` itself does), so that
``jaxclust.cluster.kmeans`` loads k-means and what it needs, not every clustering method, the
OT package and the metrics (0.19 s -> 0.03-0.04 s in a fresh process on a 2-core CPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.lazy import lazy_attributes

#: public name -> the module of this package that defines it
_LAZY: dict[str, str] = {
    "GMMResult": "mixture",
    "KMeansResult": "lloyd",
    "KMedoidsResult": "medoids",
    "LaplacianKMeansResult": "laplacian",
    "MLCResult": "rate_reduction",
    "MiniBatchKMeansState": "minibatch",
    "SSGMMResult": "semi_supervised",
    "SelectKResult": "select",
    "SinkhornKMeansResult": "soft",
    "SoftKMeansResult": "soft",
    "SpectralResult": "spectral_clustering",
    "affinity_matrix": "spectral_clustering",
    "coding_rate": "rate_reduction",
    "dec_loss": "deep",
    "dec_target": "deep",
    "fastclara": "clara",
    "gmm": "mixture",
    "gmm_aic": "mixture",
    "gmm_bic": "mixture",
    "gmm_log_prob": "mixture",
    "kmeans": "lloyd",
    "kmeans_loss": "losses",
    "kmeans_plusplus": "lloyd",
    "kmeans_predict": "lloyd",
    "kmedoids": "medoids",
    "kmedoids_predict": "medoids",
    "laplacian_kmeans": "laplacian",
    "laplacian_kmeans_predict": "laplacian",
    "minibatch_kmeans": "minibatch",
    "minibatch_kmeans_init": "minibatch",
    "minibatch_kmeans_update": "minibatch",
    "mlc": "rate_reduction",
    "mlc_loss": "rate_reduction",
    "mlc_membership": "rate_reduction",
    "nt_xent_loss": "contrastive",
    "pam_build": "medoids",
    "pseudo_label_loss": "deep",
    "select_k": "select",
    "semi_supervised_gmm": "semi_supervised",
    "semi_supervised_gmm_predict": "semi_supervised",
    "sinkhorn_kmeans": "soft",
    "sinkhorn_kmeans_predict": "soft",
    "soft_assignment": "losses",
    "soft_kmeans": "soft",
    "soft_kmeans_predict": "soft",
    "spectral": "spectral_clustering",
    "spectral_predict": "spectral_clustering",
    "swav_loss": "losses",
    "tell_assignment": "deep",
    "tell_loss": "deep",
}

if TYPE_CHECKING:  # what a type checker and the API docs (griffe) see; nothing runs here
    from .clara import fastclara as fastclara
    from .contrastive import nt_xent_loss as nt_xent_loss
    from .deep import (
        dec_loss as dec_loss,
        dec_target as dec_target,
        pseudo_label_loss as pseudo_label_loss,
        tell_assignment as tell_assignment,
        tell_loss as tell_loss,
    )
    from .laplacian import (
        LaplacianKMeansResult as LaplacianKMeansResult,
        laplacian_kmeans as laplacian_kmeans,
        laplacian_kmeans_predict as laplacian_kmeans_predict,
    )
    from .lloyd import (
        KMeansResult as KMeansResult,
        kmeans as kmeans,
        kmeans_plusplus as kmeans_plusplus,
        kmeans_predict as kmeans_predict,
    )
    from .losses import (
        kmeans_loss as kmeans_loss,
        soft_assignment as soft_assignment,
        swav_loss as swav_loss,
    )
    from .medoids import (
        KMedoidsResult as KMedoidsResult,
        kmedoids as kmedoids,
        kmedoids_predict as kmedoids_predict,
        pam_build as pam_build,
    )
    from .minibatch import (
        MiniBatchKMeansState as MiniBatchKMeansState,
        minibatch_kmeans as minibatch_kmeans,
        minibatch_kmeans_init as minibatch_kmeans_init,
        minibatch_kmeans_update as minibatch_kmeans_update,
    )
    from .mixture import (
        GMMResult as GMMResult,
        gmm as gmm,
        gmm_aic as gmm_aic,
        gmm_bic as gmm_bic,
        gmm_log_prob as gmm_log_prob,
    )
    from .rate_reduction import (
        MLCResult as MLCResult,
        coding_rate as coding_rate,
        mlc as mlc,
        mlc_loss as mlc_loss,
        mlc_membership as mlc_membership,
    )
    from .select import SelectKResult as SelectKResult, select_k as select_k
    from .semi_supervised import (
        SSGMMResult as SSGMMResult,
        semi_supervised_gmm as semi_supervised_gmm,
        semi_supervised_gmm_predict as semi_supervised_gmm_predict,
    )
    from .soft import (
        SinkhornKMeansResult as SinkhornKMeansResult,
        SoftKMeansResult as SoftKMeansResult,
        sinkhorn_kmeans as sinkhorn_kmeans,
        sinkhorn_kmeans_predict as sinkhorn_kmeans_predict,
        soft_kmeans as soft_kmeans,
        soft_kmeans_predict as soft_kmeans_predict,
    )
    from .spectral_clustering import (
        SpectralResult as SpectralResult,
        affinity_matrix as affinity_matrix,
        spectral as spectral,
        spectral_predict as spectral_predict,
    )


__getattr__, __dir__ = lazy_attributes(
    __name__, globals(), {name: (f".{module}", name) for name, module in _LAZY.items()})


__all__ = [
    "MLCResult",
    "coding_rate",
    "mlc",
    "mlc_loss",
    "mlc_membership",
    "dec_loss",
    "dec_target",
    "pseudo_label_loss",
    "tell_assignment",
    "tell_loss",
    "GMMResult",
    "KMeansResult",
    "KMedoidsResult",
    "fastclara",
    "kmedoids",
    "kmedoids_predict",
    "pam_build",
    "gmm",
    "gmm_aic",
    "gmm_bic",
    "gmm_log_prob",
    "LaplacianKMeansResult",
    "SpectralResult",
    "affinity_matrix",
    "laplacian_kmeans",
    "laplacian_kmeans_predict",
    "spectral",
    "spectral_predict",
    "MiniBatchKMeansState",
    "SelectKResult",
    "SinkhornKMeansResult",
    "SoftKMeansResult",
    "kmeans",
    "kmeans_loss",
    "nt_xent_loss",
    "soft_assignment",
    "swav_loss",
    "kmeans_plusplus",
    "kmeans_predict",
    "minibatch_kmeans",
    "minibatch_kmeans_init",
    "minibatch_kmeans_update",
    "sinkhorn_kmeans",
    "sinkhorn_kmeans_predict",
    "select_k",
    "SSGMMResult",
    "semi_supervised_gmm",
    "semi_supervised_gmm_predict",
    "soft_kmeans",
    "soft_kmeans_predict",
]
