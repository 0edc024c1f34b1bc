"""Deployment entry points (e.g. `flows/image_pipeline.py:image_pipeline` in prefect.yaml).

The flows themselves live in the installed package, `dj_flows.flows`, so that the `dj-flows`
command and any worker that has dj-flows installed can import them; these files re-export them.
"""
