"""Representational alignment metrics: exact kNN graphs, MKNN, CKA, CKNNA, mutual information,
with permutation nulls and subsampling intervals. Metrics are listed in ``registry``; the
workflow's entry points are ``knn.knn_file`` and ``compare.compare_files``."""
