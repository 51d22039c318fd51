"""S3 archive: raw events as gzipped NDJSON objects in an S3 bucket or an S3-compatible store."""

from cdp.destinations.framework import (
    EVERY_EVENT_TRIGGER,
    WHOLE_EVENT,
    Action,
    ActionField,
    DestinationType,
    SettingField,
)
from cdp.destinations.registry import register

S3_ARCHIVE = register(
    DestinationType(
        key="s3_archive",
        name="S3 archive",
        description=(
            "Archive raw events as gzipped NDJSON in Amazon S3 or an S3-compatible store (MinIO, Ceph, …), "
            "under <prefix>/<source id>/<received day>/."
        ),
        category="Storage",
        settings=(
            SettingField("bucket", "Bucket", required=True, help="The bucket objects are written to; it must exist."),
            SettingField(
                "prefix",
                "Key prefix",
                default="cdp",
                help="Objects go under <prefix>/<source id>/<YYYY-MM-DD>/; / for the bucket's root.",
            ),  # fmt: skip
            SettingField("region", "Region", default="us-east-1", help="The bucket's region, e.g. eu-west-1."),
            SettingField(
                "endpoint_url",
                "Endpoint URL",
                type="url",
                help="For S3-compatible stores only, e.g. http://minio.internal:9000 (path-style addressing). "
                "Empty: Amazon S3.",
            ),  # fmt: skip
            SettingField(
                "access_key_id",
                "Access key ID",
                help="Empty: the worker's own AWS credentials (environment, profile or instance role).",
            ),  # fmt: skip
            SettingField("secret_access_key", "Secret access key", secret=True),
        ),
        actions=(
            Action(
                key="archive",
                name="Archive raw events",
                description="Write the event, shaped by the mapping, as one line of a gzipped NDJSON object.",
                fields=(
                    ActionField(
                        "event",
                        "Event",
                        type="object",
                        required=True,
                        default=WHOLE_EVENT,
                        help="The JSON written as one line; by default the whole normalised event.",
                    ),  # fmt: skip
                ),
                default_trigger=EVERY_EVENT_TRIGGER,
                batchable=True,
            ),
        ),
        sender="cdp.destinations.types.s3_archive.sender.S3ArchiveSender",
        connection_test="cdp.destinations.types.s3_archive.check.check",
        # Few large objects beat many small ones: fill batches for up to a minute before writing.
        delivery_defaults={"batch_size": 1000, "batch_wait_seconds": 60.0, "timeout_seconds": 30.0},
    )
)
