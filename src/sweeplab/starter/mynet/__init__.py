"""Your architectures: plain ``nn.Module``s that sweeplab builds from configs/model/*.yaml."""

__all__: list[str] = []
