"""The torch backend: trace with torch.fx, build the view, splice SqueezeExcite modules in.

seinject.apply / plan / remove are the public entry points (seinject.torch.api).
"""
