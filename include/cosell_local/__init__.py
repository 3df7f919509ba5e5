"""Local-run tooling: the offline stack behind ``make demo`` and ``make airflow``.

Not part of the sync logic: it starts the two emulators and a moto server (S3, DynamoDB) and
points the Airflow connections at them, so everything runs without credentials or network.
"""
