"""Readable assertion failures inside the shared parity helper."""

import pytest

pytest.register_assert_rewrite("tests.core._parity")
