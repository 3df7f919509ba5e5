"""Catalog extras: partner solutions, selling system settings and resource tags."""

from __future__ import annotations

from typing import Any

from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ResourceNotFoundException,
    ValidationException,
)
from emulators.partner_central.models.base import CATALOGS, BackendBase, paginate, parse_ts


class CatalogExtrasMixin(BackendBase):
    """ListSolutions, Get/PutSellingSystemSettings, Tag/Untag/ListTagsForResource."""

    def reset(self) -> None:
        """Reset the base state, then re-create the default solutions of each catalog."""
        with self.lock:
            super().reset()
            # False: Get/PutSellingSystemSettings answer AccessDeniedException, as for a caller whose IAM
            # policy lacks partnercentral:GetSellingSystemSettings (test control ``settings_access``).
            self.settings_access = True
            for catalog in CATALOGS:
                self._seed_solutions(catalog)

    def _seed_solutions(self, catalog: str) -> None:
        names = [
            ("Data Lake Accelerator", "Software Product"),
            ("Migration Factory", "Consulting Service"),
            ("Managed Kubernetes", "Managed Service"),
            ("GenAI Assistant", "Software Product"),
            ("Legacy Archive", "Consulting Service"),
        ]
        base = parse_ts("2024-01-15T09:00:00Z")
        for i, (name, category) in enumerate(names, start=1):
            sid = f"S-{1000000 + i}"
            self.stores[catalog]["solutions"][sid] = {
                "Catalog": catalog,
                "Id": sid,
                "Arn": sid,
                "Name": name,
                "Category": category,
                "Status": "Inactive" if i == 5 else "Active",
                "CreatedDate": base + i * 86_400_000,
            }

    def list_solutions(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListSolutions with filters and sort."""
        with self.lock:
            items = [
                s
                for s in self.store(params["Catalog"])["solutions"].values()
                if (not params.get("Status") or s["Status"] in params["Status"])
                and (not params.get("Identifier") or s["Id"] in params["Identifier"])
                and (not params.get("Category") or s["Category"] in params["Category"])
            ]
            sort = params.get("Sort") or {"SortBy": "Identifier", "SortOrder": "ASCENDING"}
            field = {"Identifier": "Id", "CreatedDate": "CreatedDate"}.get(sort["SortBy"], sort["SortBy"])
            items.sort(key=lambda s: (s[field], s["Id"]), reverse=sort["SortOrder"] == "DESCENDING")
            page, nxt = paginate(items, params, 20)
            return {"SolutionSummaries": page, "NextToken": nxt}

    def _settings_allowed(self, operation: str) -> None:
        if not self.settings_access:
            # The model has no AccessDeniedExceptionErrorCode for a missing IAM permission: no Reason.
            raise AccessDeniedException(f"User is not authorized to perform: partnercentral:{operation}")

    def put_settings(self, catalog: str, role: str | None) -> dict[str, Any]:
        """PutSellingSystemSettings: a bare role name is expanded to this account's role ARN.

        The API reference names no EventBridge event for settings (the selling events are about opportunities,
        engagements, invitations and snapshots), so none is emitted. An omitted role keeps the current one:
        the operation is documented as an update of the set settings, and it is idempotent.
        """
        with self.lock:
            self._settings_allowed("PutSellingSystemSettings")
            settings = self.store(catalog)["settings"]
            if role:
                settings["ResourceSnapshotJobRoleArn"] = (
                    role if role.startswith("arn:") else f"arn:aws:iam::{self.account_id}:role/{role}"
                )
            return {"Catalog": catalog, **settings}

    def get_settings(self, catalog: str) -> dict[str, Any]:
        """GetSellingSystemSettings: ``Catalog`` only until a role was put."""
        with self.lock:
            self._settings_allowed("GetSellingSystemSettings")
            return {"Catalog": catalog, **self.store(catalog)["settings"]}

    def _resource_arns(self) -> set[str]:
        arns = set()
        for store in self.stores.values():
            for coll in ("opportunities", "engagements", "snapshot_jobs"):
                arns.update(r["Arn"] for r in store[coll].values())
            for tasks in store["tasks"].values():
                arns.update(t["TaskArn"] for t in tasks.values())
        return arns

    def _taggable(self, arn: str) -> None:
        if arn not in self._resource_arns():
            raise ResourceNotFoundException(f"Resource {arn} not found")

    def tag(self, arn: str, tags: list[dict[str, str]]) -> None:
        """TagResource (at most 200 tags a resource, model ``TagList``)."""
        with self.lock:
            self._taggable(arn)
            current = dict(self.tags.get(arn, {}))
            current.update({t["Key"]: t["Value"] for t in tags})
            if len(current) > 200:
                raise ValidationException(
                    "A resource can have at most 200 tags",
                    [{"FieldName": "Tags", "Message": "Too many tags", "Code": "TOO_MANY_VALUES"}],
                )
            self.tags[arn] = current

    def untag(self, arn: str, keys: list[str]) -> None:
        """UntagResource."""
        with self.lock:
            self._taggable(arn)
            for key in keys:
                self.tags.get(arn, {}).pop(key, None)

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        """ListTagsForResource."""
        with self.lock:
            self._taggable(arn)
            return [{"Key": k, "Value": v} for k, v in self.tags.get(arn, {}).items()]
