# ape misses PoA chains (Clique): see devnet/ape_poa.py
from devnet.ape_poa import install as _install_poa_detection

_install_poa_detection()
