// Package token holds pcistream's card-data cryptography: the versioned keyring,
// keyed (HMAC-SHA-256) tokens, and envelope encryption of PANs for the vault.
//
// Tokens are HMAC-SHA-256 of the PAN under a per-version secret key (PCI DSS
// 3.5.1.1: a keyed cryptographic hash, never a plain or salted hash). They are
// deterministic per key version so joins and retries line up, and they carry
// their key version: tok_v<N>_<32 letters>. The body uses a letters-only
// alphabet so the PAN detector can never see a digit run in a token.
//
// Vault records hold the PAN under envelope encryption: AES-256-GCM with a
// 256-bit data key, the data key wrapped by a key-encryption key (KEK). The KEK
// lives either in the local keyring (AES key wrap, RFC 3394) or in a KMS (the
// KMS interface, with an AWS KMS implementation). The AES-GCM additional data
// binds the ciphertext to its token and key version, so a vault record cannot
// be moved to another token.
package token
