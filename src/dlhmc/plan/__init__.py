"""The workflow's plan: which jobs an experiment needs, where their results live, and the checks
of a config that the JSON schema cannot express.

Snakemake parses ``workflow/rules/common.smk`` on every call (every dry run, every cluster job), so
everything here is torch-free: the ``.smk`` files only look values up through these modules and
turn them into ``dlhmc`` command lines, and the rules of the config are unit-tested without
Snakemake (``tests/test_plan.py``).  Library code raises ``ValueError``; ``common.smk`` reports it
as Snakemake's ``WorkflowError``.

The schema check of a variant uses ``jsonschema``, which is installed with Snakemake (the
``workflow`` extra of pyproject.toml): planning needs the workflow's software anyway.

``paths``: labels and result paths; ``experiments``: validation and the learners of an experiment;
``hmc_grid``: the HMC baseline points; ``jobs``: the input and option functions of the rules and
the targets; ``schema_docs``: the parameter table of docs/pipeline.md.
"""
