"""What keeps parallel test workers (pytest-xdist) out of each other's way.

Most tests need nothing: each worker has its own topic namespace and each test its own account.
A few processes act on rows of every account, not only the test's own: the webhooks process
claims every endpoint's due deliveries, and the scheduler starts a run for every site whose slot
has come. The modules that run those, or make rows they would act on, share one worker, one
module after another."""

from __future__ import annotations

import pytest

SHARED_ROWS = pytest.mark.xdist_group("rows-of-every-account")
