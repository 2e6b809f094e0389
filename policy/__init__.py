"""The Pulumi policy pack (``policy/__main__.py``).

Its policies are in ``policy/pack.py``, their pure rules in ``policy/rules.py``.
"""
