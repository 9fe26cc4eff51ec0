"""Solidity sources of the MedSwarm ledger and their committed compiled artifacts (contracts/build/)."""
