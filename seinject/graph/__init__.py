"""The backend-neutral graph: the view both backends build, the matcher, sites and reports.

Knows nothing of torch or ONNX: backends hand over RawOps, the matcher hands back Sites.
"""
