package tokenizer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/opaudit"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// MinReasonLen is the shortest accepted detokenization reason: a ticket id
// or a sentence, not "x".
const MinReasonLen = 8

// DetokenizeRequest is one authorised operator's request to reveal a PAN.
type DetokenizeRequest struct {
	Token  string
	Reason string // why: recorded in the audit event
	// Actor is who: the authenticated identity (the Kafka principal, or
	// the gateway's authenticated caller), recorded as the event's actor.
	Actor string
	// Operator is an optional name typed by the operator, recorded as an
	// attribute beside the actor, never as the actor.
	Operator string
}

// Detokenizer reveals PANs from the vault: the one authorised path back from
// token to PAN. Every use is written to the audit topic before the PAN is
// returned; if the audit event cannot be written, nothing is revealed.
type Detokenizer struct {
	vault      *token.Vault
	serde      *schemas.Serde
	topics     config.Topics
	clientOpts []kgo.Opt
	now        func() time.Time
	index      *VaultIndex
}

// NewDetokenizer returns a Detokenizer reading the vault topic and writing
// audit events through clientOpts.
func NewDetokenizer(vault *token.Vault, serde *schemas.Serde, topics config.Topics, clientOpts []kgo.Opt) *Detokenizer {
	return &Detokenizer{vault: vault, serde: serde, topics: topics, clientOpts: clientOpts, now: time.Now}
}

// UseIndex makes d look tokens up in ix (kept open by the caller). Without
// one, each Detokenize builds a temporary index of the token's partition.
func (d *Detokenizer) UseIndex(ix *VaultIndex) { d.index = ix }

// lookup reads tok's vault entry through the index.
func (d *Detokenizer) lookup(ctx context.Context, tok string) (VaultRecord, error) {
	ix := d.index
	if ix == nil {
		var err error
		if ix, err = OpenVaultIndex(ctx, "", d.clientOpts, d.topics.Vault, 0); err != nil {
			return VaultRecord{}, err
		}
		defer ix.Close()
	}
	version, err := token.ParseToken(tok)
	if err != nil {
		return VaultRecord{}, err
	}
	// A retired version's entries are deleted (or being deleted): say so
	// rather than "not found", and reveal nothing still in flight.
	if re, err := ix.Retired(ctx, d.serde, version); err != nil {
		return VaultRecord{}, err
	} else if re != nil {
		return VaultRecord{}, re
	}
	return ix.Lookup(ctx, d.serde, tok)
}

// ErrRefused is returned for requests the policy refuses (no reason, no
// operator, not a token); they are not audited because nothing was read.
var ErrRefused = errors.New("detokenize refused")

// Detokenize checks the request, reads and decrypts the vault entry, writes
// the audit event (outcome ok or error) and only then returns the PAN. The
// caller must clear the returned slice after use.
func (d *Detokenizer) Detokenize(ctx context.Context, req DetokenizeRequest) ([]byte, error) {
	req.Reason = strings.TrimSpace(req.Reason)
	req.Operator = strings.TrimSpace(req.Operator)
	if len(req.Reason) < MinReasonLen {
		return nil, fmt.Errorf("%w: --reason must say why (at least %d characters, e.g. a ticket id)", ErrRefused, MinReasonLen)
	}
	if req.Actor == "" {
		return nil, fmt.Errorf("%w: no authenticated actor", ErrRefused)
	}
	version, err := token.ParseToken(req.Token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	if kr := d.vault.Keyring(); !kr.CanOpen(version) {
		if kr.Role() == token.RoleTokenizer {
			return nil, fmt.Errorf("%w: %v", ErrRefused, token.ErrSealOnly)
		}
		return nil, fmt.Errorf("%w: the keyring has no key that opens vault records of key version %d", ErrRefused, version)
	}

	now := d.now()
	ev := schemas.AuditEvent{
		Time:    now.UnixMilli(),
		Actor:   req.Actor,
		Action:  "detokenize",
		Topic:   d.topics.Vault,
		Subject: req.Token,
		Reason:  req.Reason,
		Attrs:   map[string]string{"key_version": strconv.FormatUint(uint64(version), 10)},
	}
	if req.Operator != "" {
		ev.Attrs["operator_claimed"] = req.Operator
	}
	// Unlike processor events, detokenizations are not replays of a record:
	// each use is its own event, so the id includes the time.
	h := sha256.Sum256([]byte(ev.Actor + "|detokenize|" + req.Token + "|" + strconv.FormatInt(now.UnixNano(), 10)))
	ev.ID = hex.EncodeToString(h[:])[:32]

	vr, lookErr := d.lookup(ctx, req.Token)
	var pan []byte
	var openErr error
	if lookErr == nil {
		ev.Partition, ev.Offset = vr.Partition, vr.Offset
		pan, openErr = d.vault.Open(ctx, req.Token, token.Sealed{
			KeyVersion: uint32(vr.Entry.KeyVersion), WrappedKey: vr.Entry.WrappedKey,
			Nonce: vr.Entry.Nonce, Ciphertext: vr.Entry.Ciphertext,
		})
	}
	switch {
	case lookErr != nil:
		ev.Outcome, ev.Attrs["error"] = "error", errCode(lookErr)
	case openErr != nil:
		ev.Outcome, ev.Attrs["error"] = "error", "decrypt_failed"
	default:
		ev.Outcome = "ok"
	}
	if err := opaudit.Write(ctx, d.clientOpts, d.serde, d.topics.AuditEvents, &ev); err != nil {
		clear(pan)
		return nil, fmt.Errorf("writing the audit event failed, nothing revealed: %w", err)
	}
	if lookErr != nil {
		return nil, lookErr
	}
	if openErr != nil {
		return nil, openErr
	}
	return pan, nil
}

func errCode(err error) string {
	if errors.Is(err, ErrNotInVault) {
		return "not_in_vault"
	}
	if isRetired(err) {
		return "key_version_retired"
	}
	return "vault_read_failed"
}
