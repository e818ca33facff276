"""Where the work runs: the local engine (one process, pandas in memory) or Dask (partition by partition, on a
``LocalCluster`` sized to the machine or on an existing cluster)."""
