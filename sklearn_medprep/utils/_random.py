"""Local seeding of the random generators that TorchIO draws from.

TorchIO draws its random parameters from torch's *global* generator (and every
transform call draws once to decide whether to apply itself). To make results
depend on ``random_state`` only, whatever ``n_jobs`` is, one seed is derived per
unit of work (an output row, a training batch) up front, and each unit runs
inside :func:`local_seed`, which seeds torch (and numpy) locally and restores the
caller's global states afterwards. torch is imported on first use (it is the
``torchio`` extra).
"""

import contextlib
import numbers
import sys

import numpy as np

from ._optional import import_optional

__all__ = ["local_seed", "preserve_rng", "seed_sequence", "spawn_seeds"]


def seed_sequence(random_state):
    """Turn ``random_state`` into a :class:`numpy.random.SeedSequence`.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState, numpy.random.Generator or None
        An int gives a fixed sequence; a ``RandomState``/``Generator`` is drawn
        from (so successive calls differ, as scikit-learn does); ``None`` takes
        fresh entropy from the operating system, without touching numpy's
        global generator.

    Returns
    -------
    numpy.random.SeedSequence

    Examples
    --------
    >>> from sklearn_medprep.utils._random import seed_sequence
    >>> seed_sequence(0).entropy
    0
    """
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(
            random_state.randint(0, 2**32, size=4, dtype=np.uint64).tolist()
        )
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(
            random_state.integers(0, 2**32, size=4, dtype=np.uint64).tolist()
        )
    raise ValueError(
        "random_state must be an int, a numpy RandomState/Generator or None, "
        f"got {random_state!r}"
    )


def spawn_seeds(sequence, n):
    """Return ``n`` independent 63-bit integer seeds from ``sequence``.

    Seed ``i`` does not depend on ``n`` (``spawn_seeds(s, 3)`` is a prefix of
    ``spawn_seeds(s, 5)``).

    Parameters
    ----------
    sequence : numpy.random.SeedSequence
        The source.
    n : int
        How many seeds.

    Returns
    -------
    list of int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.utils._random import spawn_seeds
    >>> a = spawn_seeds(np.random.SeedSequence(1), 3)
    >>> a == spawn_seeds(np.random.SeedSequence(1), 5)[:3]
    True
    """
    state = sequence.generate_state(n, dtype=np.uint64)
    return [int(s) >> 1 for s in state]


@contextlib.contextmanager
def preserve_rng():
    """Restore torch's CPU and numpy's global random states on exit.

    Examples
    --------
    >>> import torch
    >>> from sklearn_medprep.utils._random import preserve_rng
    >>> before = torch.get_rng_state()
    >>> with preserve_rng():
    ...     _ = torch.rand(3)
    >>> torch.equal(before, torch.get_rng_state())
    True
    """
    torch = import_optional("torch", "seeding TorchIO's random transforms")
    numpy_state = np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(numpy_state)  # noqa: NPY002


@contextlib.contextmanager
def local_seed(seed):
    """Seed torch and numpy with ``seed`` inside, restore the caller's states after.

    Parameters
    ----------
    seed : int or None
        Seed; ``None`` only protects the caller's states (draws continue from
        them).

    Examples
    --------
    >>> import torch
    >>> from sklearn_medprep.utils._random import local_seed
    >>> with local_seed(3):
    ...     a = torch.rand(2)
    >>> with local_seed(3):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b)
    True
    """
    with preserve_rng():
        torch = sys.modules["torch"]  # imported by preserve_rng
        if seed is not None:
            # the CPU generator TorchIO draws from (torch.manual_seed would also
            # seed every accelerator backend, 50x slower)
            torch.default_generator.manual_seed(seed)
            np.random.seed(seed % 2**32)  # noqa: NPY002
        yield
