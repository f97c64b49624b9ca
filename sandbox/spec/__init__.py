"""The first step of the flow: a YAML spec read, checked and turned into a `Spec` (`sandbox.spec.load`)."""
