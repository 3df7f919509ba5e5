"""Airflow glue: what each task of the co-sell DAGs runs (not a hook: it builds hooks and stores).

``cosell_runtime.env`` builds a task's :class:`~cosell_sync.env.SyncEnv` from the three Connections;
``cosell_runtime.tasks`` has one named function per task, each calling one step of ``cosell_sync``.
"""
