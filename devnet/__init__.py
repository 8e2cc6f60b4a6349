"""A multi-operator proof-of-authority chain on this machine: geth v1.13.15 Clique signers, one
per operator (`python -m devnet start|stop|status|geth`, `make network` / `make network-stop`)."""
