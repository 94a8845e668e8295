"""Plain ``torch.nn.Module`` building blocks (no skorch here)."""

__all__ = []
