"""A concrete `Spec` made into an `nn.Module`: the builder, its layers, FLOP counting and weight maps."""
