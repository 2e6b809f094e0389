"""Entry point the Pulumi engine runs for ``--policy-pack policy``: serves the pack's policies."""

import sys
from pathlib import Path

# The engine runs this file from policy/; the rules import the project's shared names.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policy.pack import ENFORCEMENT, POLICIES
from policy.rules import PACK_NAME

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=ENFORCEMENT)
