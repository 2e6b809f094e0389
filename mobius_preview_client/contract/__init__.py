"""The job contract shared with producers: the payload's validation (against
``schemas/preview-job.schema.json``), the job-id rule, and ``python -m worker validate``
(``python -m mobius_preview_client validate`` from the wheel)."""
