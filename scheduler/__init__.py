"""Load-aware placement: the kube-scheduler extender and a cluster simulator."""
