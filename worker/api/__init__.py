"""The job API (``python -m worker api``): the app, its handlers, bearer-token auth and request metrics.

Empty on purpose: :mod:`worker.settings` imports :mod:`worker.api.auth` to check the tokens,
which must not pull in the app.
"""
