"""Networks (plain ``nn.Module``s built from keyword arguments) and the LightningModule."""

__all__: list[str] = []
