"""Catalog extras: partner solutions, selling system settings and resource tags."""

from __future__ import annotations

from typing import Any

from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ResourceNotFoundException,
    ValidationException,
)
from emulators.partner_central.models.base import CATALOGS, BackendBase, paginate, parse_ts

#: Tag keys AWS reserves (general AWS tagging rules): partners cannot add, change or remove them.
RESERVED_TAG_PREFIX = "aws:"
#: Tags a resource may hold besides ``aws:`` ones (assumption: the model's per-request ``TagList`` maximum).
MAX_TAGS_PER_RESOURCE = 200


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

    def put_solutions(
        self, catalog: str, solutions: list[dict[str, Any]], remove: list[str]
    ) -> dict[str, Any]:
        """Test control: the partner registers, edits or withdraws solutions in Partner Central.

        Each entry is a ``SolutionBase`` (``Id`` optional: the next free ``S-`` id); an existing ``Id`` is
        updated with the given members. ``remove`` withdraws solutions: ``ListSolutions`` no longer lists
        them (opportunities keep their associations, as the API reference says nothing of a cascade).
        Values are checked against the ``SolutionBase`` shape (``ValidationException``).
        """
        from emulators.partner_central import shapes

        with self.lock:
            store = self.store(catalog)["solutions"]
            statuses = shapes.shape("SolutionBase").members["Status"].enum
            changed: list[str] = []
            for item in solutions:
                unknown = set(item) - {"Id", "Name", "Category", "Status", "AwsMarketplaceSolutionArn"}
                if unknown:
                    raise ValidationException(f"Unknown SolutionBase members: {sorted(unknown)}")
                if item.get("Status") is not None and item["Status"] not in statuses:
                    raise ValidationException(f"Status must be one of {list(statuses)}")
                sid = item.get("Id") or f"S-{max([1000000, *(int(k[2:]) for k in store)]) + 1}"
                if not shapes.regex("S-[0-9]{1,19}").fullmatch(sid):
                    raise ValidationException("Id must match S-[0-9]{1,19}")
                current = store.get(sid) or {
                    "Catalog": catalog,
                    "Id": sid,
                    "Arn": sid,
                    "Name": sid,
                    "Category": "Software Product",
                    "Status": "Active",
                    "CreatedDate": self.now(),
                }
                store[sid] = {**current, **{k: v for k, v in item.items() if v is not None}}
                changed.append(sid)
            removed = [sid for sid in remove if store.pop(sid, None) is not None]
            return {"solutions": changed, "removed": removed}

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
        """TagResource: a new key is added, an existing key gets the new value.

        The model's ``TagList`` takes at most 200 tags a request; the emulator also holds a resource to 200
        tags (*assumption*: the API reference gives no per-resource limit), not counting ``aws:`` tags, which
        the general AWS tagging rules leave out of the limit. Keys starting with ``aws:`` are reserved for
        AWS (general AWS tagging rules; *assumption* for Partner Central, whose reference says nothing of
        them): a request naming one is refused whole. No event: AWS documents no EventBridge event for tags,
        and a tag change does not move the opportunity's ``LastModifiedDate``.
        """
        with self.lock:
            self._taggable(arn)
            self._not_reserved([t["Key"] for t in tags], "Tags", "Key")
            current = dict(self.tags.get(arn, {}))
            current.update({t["Key"]: t["Value"] for t in tags})
            if sum(not k.startswith(RESERVED_TAG_PREFIX) for k in current) > MAX_TAGS_PER_RESOURCE:
                raise ValidationException(
                    f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags",
                    [{"FieldName": "Tags", "Message": "Too many tags", "Code": "TOO_MANY_VALUES"}],
                    reason="BUSINESS_VALIDATION_FAILED",
                )
            self.tags[arn] = current

    def untag(self, arn: str, keys: list[str]) -> None:
        """UntagResource: keys the resource lacks are ignored; ``aws:`` keys are refused (see ``tag``)."""
        with self.lock:
            self._taggable(arn)
            self._not_reserved(keys, "TagKeys", None)
            for key in keys:
                self.tags.get(arn, {}).pop(key, None)

    @staticmethod
    def _not_reserved(keys: list[str], field: str, member: str | None) -> None:
        for i, key in enumerate(keys):
            if key.startswith(RESERVED_TAG_PREFIX):
                name = f"{field}[{i}].{member}" if member else f"{field}[{i}]"
                raise ValidationException(
                    "Tag keys starting with aws: are reserved for AWS",
                    [{"FieldName": name, "Message": "Reserved tag key prefix aws:", "Code": "INVALID_VALUE"}],
                    reason="BUSINESS_VALIDATION_FAILED",
                )

    def set_aws_tags(self, arn: str, tags: dict[str, str]) -> None:
        """Test control: AWS sets (value) or removes (None) its own ``aws:`` tags on a resource."""
        with self.lock:
            self._taggable(arn)
            if any(not k.startswith(RESERVED_TAG_PREFIX) for k in tags):
                raise ValidationException("Only keys starting with aws: can be set as AWS's tags")
            current = self.tags.setdefault(arn, {})
            for key, value in tags.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = str(value)
            self.touch()

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        """ListTagsForResource."""
        with self.lock:
            self._taggable(arn)
            return [{"Key": k, "Value": v} for k, v in self.tags.get(arn, {}).items()]
