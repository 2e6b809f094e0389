"""The preview worker: a BullMQ consumer that renders image and PDF previews.

Importing this package is cheap on purpose: the Pulumi program imports
``worker.constants`` for the names both halves share.
"""
