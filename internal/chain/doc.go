// Package chain is pcistream's tamper-evident audit trail format: batch
// objects of JSON Lines records, hash-chained manifests, an RFC 9162 Merkle
// tree per partition and Ed25519-signed checkpoints of every partition head.
//
// The package is pure: it reads and writes through a [Store], so the same code
// appends to S3 (internal/auditstore), verifies a bucket, or verifies an
// offline copy on local disk ([DirStore]). The byte format is described in
// FORMAT.md beside this file; assessors should be able to re-implement the
// verifier from it alone.
package chain
