"""Sources: folders and bucket prefixes kept in step with the voxel store (issue 20).

:mod:`.scan` lists a source, :mod:`.ledger` records every entry's versions and outcomes in the
voxel database, :mod:`.sync` runs one incremental pass, :mod:`.runner` chooses the in-process
pipeline or the RabbitMQ workers and runs ``watch``; :mod:`.cli` is ``thunderline sync``,
``thunderline watch`` and ``thunderline sources``.
"""
