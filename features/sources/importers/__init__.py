"""Importers: real public datasets turned into the touchpoint data contract.

Each importer (one module per dataset, with its notes: source, mapping, quirks) reads one dataset folder
as published under ``../shared/datasets/<name>`` (see the README there), keeps what the dataset really
has, documents what it lacks, and returns validated :class:`~features.contract.schema.Tables` whose
``meta["manifest"]`` records the dataset, the decisions taken (time base, dropped rows, leaks) and the
counts. :func:`features.sources.importers.registry.import_dataset` is the entry point. Nothing here writes
files: the CLI does that.

Decisions shared by every importer:

- Timestamps are UTC. Where a dataset has no calendar date (starbucks hours, bank_marketing day+month,
  online_shoppers month) the time base is a documented constant and is written into the manifest.
- Consent is not recorded in any of these datasets. A consent flag is set only where the data show the
  company used that channel for every customer (starbucks email + push, bank_marketing / ifood calls);
  everything else is ``False`` ("no known consent"), so a policy never contacts on a guess.
- Static attributes (extra ``customers`` columns) only hold information known at the customer's first
  record; a value from a later record would leak the future into every cutoff.
"""
