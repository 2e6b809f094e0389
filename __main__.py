"""The Pulumi program: load the stack config, build the worker stack, export its outputs.

An invalid config raises ConfigError here, and a kubeconfig that reaches another cluster than
the stack's ``cluster.identity`` a TargetError, both before any resource is registered.
"""

import pulumi

from infra.components.stack import PreviewWorkerStack, StackArgs
from infra.config.model import from_pulumi

config = from_pulumi()
stack = PreviewWorkerStack("preview-worker", StackArgs(config=config, instance=pulumi.get_stack()))
for key, value in stack.outputs.items():
    pulumi.export(key, value)
