"""The release flow: pin, canary, promote, roll back and roll out, as stack-file edits with history.

A release is a change to ``Pulumi.<stack>.yaml`` (stable image, canary weight
and image, release ID) plus one appended line in ``releases/<stack>.jsonl``;
rollback is the same kind of change in reverse. ``python -m infra release …``
(:mod:`infra.tools.release.cli`) is the command line.
"""
