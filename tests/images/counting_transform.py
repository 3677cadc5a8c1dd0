"""A real TorchIO transform that counts the subjects it is applied to."""

import torchio as tio


class Counting(tio.Transform):
    """Apply ``inner`` and count the call (``Counting.calls[0]``)."""

    calls = [0]

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def apply_transform(self, subject):
        Counting.calls[0] += 1
        return self.inner(subject)
