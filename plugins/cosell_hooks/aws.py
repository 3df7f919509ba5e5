"""AWS hooks that build their boto3 clients cheaply: one parsed set of botocore models per process.

Every ``AwsBaseHook.get_session()`` makes a new botocore session, and every new session parses botocore's
JSON data again (the service model, ``endpoints.json``, the partitions and the endpoint ruleset) and,
through ``_get_caller``, walks the whole call stack with ``inspect.stack()`` to name the caller in the
user agent. A sync task builds three to five clients (S3, DynamoDB, Partner Central, the lease's DynamoDB),
so that was ~0.2 s per client, ~0.8 s per task and ~15 s per ``cosell_reconcile`` run of CPU spent before
the first API call (measured: ``AwsBaseHook(client_type="dynamodb").get_conn()`` 0.23 s, 0.028 s with
this mixin).

:class:`SharedModelsMixin` keeps everything else of ``AwsBaseHook`` (credentials, role assumption,
``endpoint_url``, the connection's botocore config) and changes two things:

* the session uses a process-wide botocore ``Loader`` (botocore's documented ``data_loader`` component).
  A loader only reads botocore's packaged data files and caches what it read, so sharing it between
  sessions shares no credentials or state; one loader per ``data_path`` keeps ``AWS_DATA_PATH`` honoured.
* the user agent's ``Caller/`` names the hook class instead of the frame found by ``inspect.stack()``
  (the provider's own fallback for a hook called outside an operator is ``Unknown``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

if TYPE_CHECKING:
    import boto3
    from botocore.loaders import Loader

_LOADERS: dict[str, Loader] = {}
_LOADERS_LOCK = threading.Lock()


def shared_loader(data_path: str | None) -> Loader:
    """The process's botocore ``Loader`` for a ``data_path`` (botocore's ``create_loader``), made once."""
    from botocore.loaders import create_loader

    key = data_path or ""
    with _LOADERS_LOCK:
        loader = _LOADERS.get(key)
        if loader is None:
            loader = _LOADERS[key] = create_loader(data_path or None)
        return loader


def share_models(session: Any) -> Any:
    """Give a boto3 (or botocore) session the process's shared loader; returns the session."""
    botocore_session = getattr(session, "_session", session)
    data_path = botocore_session.get_config_variable("data_path")
    botocore_session.register_component("data_loader", shared_loader(data_path))
    return session


class SharedModelsMixin:
    """Mixin for an ``AwsBaseHook`` subclass: sessions share the parsed botocore models, no stack walk."""

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> boto3.session.Session:
        """The base hook's session (credentials and config from the connection), on the shared loader."""
        session = super().get_session(region_name=region_name, deferrable=deferrable)  # type: ignore[misc]
        if deferrable:
            # An aiobotocore session keeps its own loader; only the sync clients share one.
            return session
        return share_models(session)

    def _get_caller(self, target_function_name: str = "execute") -> str:
        # Overrides AwsBaseHook's stack walk (``inspect.stack()`` reads the source of every frame: ~65 ms at
        # a task's depth); the value only goes into the user agent string.
        return type(self).__name__


class AwsClientHook(SharedModelsMixin, AwsBaseHook):
    """``AwsBaseHook`` for a boto3 client (``client_type``) of the state stores: DynamoDB, SQS, SNS."""


class StateBucketHook(SharedModelsMixin, S3Hook):
    """The amazon provider's ``S3Hook`` (its connection extras and S3 config), on the shared loader."""


def aws_client(service: str, conn_id: str, config: Any = None) -> Any:
    """A boto3 client for ``service`` from an ``aws`` connection (S3 through :class:`StateBucketHook`).

    Args:
        service: the boto3 service name (``s3``, ``dynamodb``, ``sqs``...).
        conn_id: the Airflow connection.
        config: a botocore ``Config`` merged over the connection's own (None: the connection's).
    """
    hook: AwsBaseHook
    if service == "s3":
        hook = StateBucketHook(aws_conn_id=conn_id)
    else:
        hook = AwsClientHook(aws_conn_id=conn_id, client_type=service)
    if config is None:
        return hook.get_conn()
    return hook.get_client_type(region_name=hook.region_name, config=hook.config.merge(config))
