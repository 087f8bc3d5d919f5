"""Trace replay: a twin of the cluster, baseline policies, the oracle and the report."""
