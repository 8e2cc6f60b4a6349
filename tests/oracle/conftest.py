# Helpers live in oracle_support (a unique module name: every test folder has a conftest).
from oracle_support import outbox  # noqa: F401  (the fixture)
