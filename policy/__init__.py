"""The Pulumi policy pack (``policy/__main__.py``) and its rules (``policy/rules.py``)."""
