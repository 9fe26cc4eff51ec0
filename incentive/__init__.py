"""MedSwarm incentive layer: the on-chain contribution ledger and everything around it.

Modules: `artifacts` (committed compiled contracts), `compile` (rebuild them with the npm
solc), `chain` (connections, dev keys, time), `keys` (key files), `anvil` (local chain
process), `errors` (revert decoding), `ledger` (typed contract client), `deploy` (a new
ledger with its members and a funded task), `audit` (history rebuilt from events and
cross-checked against state), `deferred_imports` (eth-keyfile's unused BLS scheme imported on
first use). Depends only on the stdlib and the web3 stack; never imports `p2p` or `node`.
"""

from incentive.deferred_imports import install as _defer_unused_imports

# Before any module of the package imports the web3 stack: eth-keyfile's BLS scheme, which no
# MedSwarm key uses, then costs nothing until something uses it (incentive.deferred_imports).
_defer_unused_imports()
