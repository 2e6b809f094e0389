"""The deployment half: the Pulumi program's components and the `python -m infra` command line."""
