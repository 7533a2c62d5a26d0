"""Expected SE sites per built-in rule in the fixture models (the torch backend finds the same on the nn.Module)."""

RULES = ("after_concat", "after_residual", "before_residual", "conv_block", "identity_branch",
         "inverted_residual", "residual_branch")
# fixture -> sites per rule, in RULES order (the torch backend finds the same on the nn.Module)
EXPECTED = {
    "resnet18":              (0, 8, 8, 1, 8, 0, 8),
    "resnet50":              (0, 16, 16, 1, 16, 0, 16),
    "resnet_tiny":           (0, 4, 4, 1, 4, 0, 4),
    "preact_resnet_tiny":    (0, 3, 3, 0, 3, 0, 3),
    "mobilenetv2_tiny":      (0, 2, 2, 7, 2, 5, 2),
    "efficientnet_tiny":     (0, 2, 2, 7, 2, 5, 2),
    "densenet_tiny":         (7, 0, 0, 6, 0, 0, 0),
    "inception_tiny":        (2, 0, 0, 15, 0, 0, 0),
    "vgg_tiny":              (0, 0, 0, 4, 0, 0, 0),
    "convnext_tiny_fixture": (0, 4, 4, 0, 4, 0, 4),
    "resnet1d_tiny":         (0, 3, 3, 1, 3, 0, 3),
    "resnet3d_tiny":         (0, 3, 3, 1, 3, 0, 3),
}
# torch.onnx.export(dynamo=True) drops DenseNet's one-input torch.cat([x], 1) (an identity), so
# after_concat has 2 sites fewer there; everything else is the same with either exporter.
DYNAMO_DIFFERS = {("densenet_tiny", "after_concat"): 5}
