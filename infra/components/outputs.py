"""The names of the stack outputs :class:`infra.components.stack.PreviewWorkerStack` exports.

Their own module, beside the component, so that consumers (the release tool's engine, ``verify``)
import the names without loading the Pulumi SDK.
"""

NAMESPACE = "namespace"
#: track → Deployment name.
DEPLOYMENTS = "deployments"
#: track → image digest (``sha256:…``); the release tool's promote gate reads the stable one.
DIGESTS = "digests"
CANARY_WEIGHT = "canaryWeight"
REPLICA_SPLIT = "replicaSplit"
CONFIG_CHECKSUM = "configChecksum"
#: The job API's Deployment name.
API = "api"
AUTOSCALER = "autoscaler"
SCALE_TO_ZERO = "scaleToZero"
RETENTION_SWEEP = "retentionSweep"
RELEASE_ID = "releaseId"
