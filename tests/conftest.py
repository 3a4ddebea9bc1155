import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole test session (starting Ray costs seconds on 2 cores)."""
    import ray

    from cot_ray.raycluster import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()
